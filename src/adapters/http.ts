/**
 * HTTP(S) downloads into a file, resuming a partial file with a Range request. Honours
 * HTTP_PROXY / HTTPS_PROXY / NO_PROXY (upper or lower case) the way curl and Go do:
 * plain http goes to the proxy with the whole URL, https through a CONNECT tunnel.
 * Lab traffic (verify's requests to node IPs) passes `proxy: false`.
 */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { cidrContains, parseCidr } from '../model/net.js';
import type { DownloadProgress, Fetcher } from '../model/ports.js';

export type { DownloadProgress } from '../model/ports.js';

type Env = Record<string, string | undefined>;

function envValue(env: Env, name: string): string | undefined {
  const value = env[name] ?? env[name.toLowerCase()];
  return value && value.trim().length > 0 ? value.trim() : undefined;
}

/** Whether NO_PROXY exempts this host: "*", a host, a domain (with or without a leading dot), an IP or a CIDR. */
export function noProxyMatches(hostname: string, noProxy: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase().replace(/:\d+$/, '');
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      const cidr = parseCidr(entry);
      if (cidr && isIP(host) === 4 && cidrContains(cidr, host)) return true;
      continue;
    }
    const domain = entry.startsWith('.') ? entry.slice(1) : entry;
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** The proxy to use for a URL, from the environment; undefined for a direct connection. */
export function proxyFor(target: string, env: Env = process.env): URL | undefined {
  const url = new URL(target);
  if (noProxyMatches(url.hostname, envValue(env, 'NO_PROXY') ?? '')) return undefined;
  const raw = envValue(env, url.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY');
  if (!raw) return undefined;
  const proxy = new URL(raw.includes('://') ? raw : `http://${raw}`);
  if (proxy.protocol !== 'http:') {
    throw new HttpError(
      `the proxy ${proxy.origin} is not an http:// proxy; klab speaks to proxies over plain http (https goes through a CONNECT tunnel)`,
    );
  }
  return proxy;
}

function proxyAuthorization(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'Proxy-Authorization': `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** An https agent whose connections are CONNECT tunnels through an http proxy. */
function tunnelAgent(proxy: URL): https.Agent {
  const agent = new https.Agent({ keepAlive: false });
  const connect = (
    options: https.RequestOptions & { servername?: string },
    callback: (error: Error | null, socket?: Duplex) => void,
  ) => {
    const target = `${options.host}:${options.port ?? 443}`;
    const request = http.request({
      host: proxy.hostname,
      port: Number(proxy.port || 80),
      method: 'CONNECT',
      path: target,
      headers: { Host: target, ...proxyAuthorization(proxy) },
      timeout: 30_000,
    });
    request.once('connect', (response, socket) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        callback(
          new HttpError(
            `proxy ${proxy.host} refused CONNECT ${target}: HTTP ${response.statusCode}`,
          ),
        );
        return;
      }
      callback(
        null,
        tls.connect({
          socket,
          servername: options.servername ?? String(options.host),
          ...(options.ca ? { ca: options.ca } : {}),
        }),
      );
    });
    request.once('timeout', () =>
      request.destroy(new HttpError(`proxy ${proxy.host} did not answer`)),
    );
    request.once('error', (error) =>
      callback(new HttpError(`proxy ${proxy.host}: ${error.message}`)),
    );
    request.end();
  };
  (agent as unknown as { createConnection: typeof connect }).createConnection = connect;
  return agent;
}

export interface RequestTarget {
  module: typeof http | typeof https;
  url: string | URL;
  options: https.RequestOptions;
}

/** How to reach `target`: directly, through a proxy with the absolute URL, or through a tunnel. */
export function requestTarget(
  target: string,
  headers: Record<string, string>,
  useProxy: boolean,
  env: Env = process.env,
): RequestTarget {
  const url = new URL(target);
  const proxy = useProxy ? proxyFor(target, env) : undefined;
  const https_ = url.protocol === 'https:';
  if (!proxy) return { module: https_ ? https : http, url: target, options: { headers } };
  if (https_)
    return { module: https, url: target, options: { headers, agent: tunnelAgent(proxy) } };
  return {
    module: http,
    url: `http://${proxy.host}/`,
    options: {
      host: proxy.hostname,
      port: Number(proxy.port || 80),
      path: target,
      headers: { ...headers, Host: url.host, ...proxyAuthorization(proxy) },
    },
  };
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
    /** Use HTTP(S)_PROXY from the environment (default true). */
    proxy?: boolean;
  } = {},
): Promise<DownloadResult> {
  const offset = await sizeOf(file);
  const redirects = options.redirects ?? 5;
  const target = requestTarget(
    url,
    { ...(options.headers ?? {}), ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) },
    options.proxy ?? true,
  );
  return new Promise((resolve, reject) => {
    const request = target.module.get(
      target.url,
      { ...target.options, timeout: options.timeoutMs ?? 30_000 },
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
  options: { proxy?: boolean } = {},
): Promise<HttpResponse> {
  const target = requestTarget(url, headers, options.proxy ?? true);
  return new Promise((resolve, reject) => {
    const request = target.module.get(
      target.url,
      { ...target.options, timeout: 30_000 },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location && redirects > 0) {
          response.resume();
          const next = new URL(response.headers.location, url).toString();
          httpGet(next, forRedirect(url, next, headers) ?? {}, redirects - 1, options).then(
            resolve,
            reject,
          );
          return;
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status, headers: response.headers, body: Buffer.concat(chunks), url }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new HttpError(`no answer from ${url} in time`)));
    request.on('error', (error) =>
      reject(error instanceof HttpError ? error : new HttpError(error.message)),
    );
  });
}

/** The Fetcher port over this module: downloads through proxies from the environment. */
export const httpFetcher: Fetcher = {
  get: (url, headers) => httpGet(url, headers),
  download: (url, file, options) => downloadToFile(url, file, options),
};
