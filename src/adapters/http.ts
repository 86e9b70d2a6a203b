/** HTTP(S) downloads into a file, resuming a partial file with a Range request. */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';

export interface DownloadProgress {
  received: number;
  total: number | undefined;
}

export interface DownloadResult {
  /** Bytes transferred in this call (0 when the file was already complete). */
  transferred: number;
  resumed: boolean;
}

export class HttpError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Credentials stay with the host they were meant for (registries redirect blobs to CDNs). */
function forRedirect(
  from: string,
  to: string,
  headers: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!headers || new URL(from).host === new URL(to).host) return headers;
  const { Authorization: _dropped, ...rest } = headers;
  return rest;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** Download url into file; if file already holds a prefix, ask only for the rest. */
export async function downloadToFile(
  url: string,
  file: string,
  options: {
    onProgress?: (p: DownloadProgress) => void;
    timeoutMs?: number;
    redirects?: number;
    headers?: Record<string, string>;
  } = {},
): Promise<DownloadResult> {
  const offset = await sizeOf(file);
  const redirects = options.redirects ?? 5;
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const request = client.get(
      url,
      {
        headers: {
          ...(options.headers ?? {}),
          ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          if (redirects <= 0) {
            reject(new HttpError(`too many redirects from ${url}`, status));
            return;
          }
          const next = new URL(response.headers.location, url).toString();
          downloadToFile(next, file, {
            ...options,
            headers: forRedirect(url, next, options.headers),
            redirects: redirects - 1,
          }).then(resolve, reject);
          return;
        }
        if (status === 416 && offset > 0) {
          // Nothing left to send: the partial file is already complete.
          response.resume();
          resolve({ transferred: 0, resumed: true });
          return;
        }
        if (status !== 200 && status !== 206) {
          response.resume();
          reject(new HttpError(`HTTP ${status} from ${url}`, status));
          return;
        }
        const resumed = status === 206;
        const start = resumed ? offset : 0;
        const length = Number(response.headers['content-length'] ?? Number.NaN);
        const total = Number.isFinite(length) ? start + length : undefined;
        const out = createWriteStream(file, { flags: resumed ? 'a' : 'w' });
        let transferred = 0;
        response.on('data', (chunk: Buffer) => {
          transferred += chunk.length;
          options.onProgress?.({ received: start + transferred, total });
        });
        response.on('aborted', () => out.destroy(new HttpError(`connection to ${url} was cut`)));
        response.on('error', (error) => out.destroy(error));
        response.pipe(out);
        out.on('error', (error) =>
          reject(error instanceof HttpError ? error : new HttpError(error.message)),
        );
        out.on('finish', () => {
          if (total !== undefined && start + transferred < total) {
            reject(
              new HttpError(
                `download from ${url} ended early (${start + transferred} of ${total} bytes)`,
              ),
            );
          } else {
            resolve({ transferred, resumed });
          }
        });
      },
    );
    request.on('timeout', () => request.destroy(new HttpError(`no answer from ${url} in time`)));
    request.on('error', (error) =>
      reject(error instanceof HttpError ? error : new HttpError(`${url}: ${error.message}`)),
    );
  });
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: string;
}

/** A small GET (manifests, tokens): the whole body in memory; follows redirects. */
export function httpGet(
  url: string,
  headers: Record<string, string> = {},
  redirects = 5,
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const request = client.get(url, { headers, timeout: 30_000 }, (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && response.headers.location && redirects > 0) {
        response.resume();
        const next = new URL(response.headers.location, url).toString();
        httpGet(next, forRedirect(url, next, headers) ?? {}, redirects - 1).then(resolve, reject);
        return;
      }
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status, headers: response.headers, body: Buffer.concat(chunks), url }),
      );
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new HttpError(`no answer from ${url} in time`)));
    request.on('error', (error) =>
      reject(error instanceof HttpError ? error : new HttpError(error.message)),
    );
  });
}
