/**
 * The shared artifact cache (~/.cache/klab/artifacts, reused by every lab). Nothing is
 * used before its SHA-256 is verified: against the manifest's official checksum, or the
 * pin recorded in the lab's klab.lock.json on the first verified download.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError, httpFetcher } from '../adapters/http.js';
import { cachePath } from '../model/cache-paths.js';
import { KlabError } from '../model/errors.js';
import { sha256File } from '../model/hash.js';
import type { DownloadProgress, Fetcher } from '../model/ports.js';
import type { LabSpec } from '../model/spec.js';
import { type Artifact, SOURCE_BASES, type SourceBase } from './manifest.js';
import { pullImage } from './registry.js';

export interface MirrorConfig {
  bases: Partial<Record<SourceBase, string>>;
  dirs: string[];
  /** Registry host -> mirror base URL. */
  registries?: Record<string, string>;
  /** The upstream addresses (tests point them at 127.0.0.1). */
  upstream?: Record<SourceBase, string>;
}

/** Mirrors from klab.yaml, overridden by KLAB_MIRROR_K8S / _GITHUB / _DOCKER and KLAB_ARTIFACT_DIRS. */
export function mirrorConfig(
  spec: Pick<LabSpec, 'mirrors'>,
  env: NodeJS.ProcessEnv = process.env,
): MirrorConfig {
  const bases: Partial<Record<SourceBase, string>> = {};
  for (const base of Object.keys(SOURCE_BASES) as SourceBase[]) {
    const value = env[`KLAB_MIRROR_${base.toUpperCase()}`] ?? spec.mirrors[base];
    if (value) bases[base] = value.replace(/\/+$/, '');
  }
  const envDirs = (env.KLAB_ARTIFACT_DIRS ?? '').split(':').filter(Boolean);
  const registries = Object.fromEntries(
    Object.entries(spec.mirrors.registries).map(([host, value]) => [
      host,
      value.replace(/\/+$/, ''),
    ]),
  );
  return {
    bases,
    dirs: [...envDirs, ...spec.mirrors.dirs],
    ...(Object.keys(registries).length > 0 ? { registries } : {}),
  };
}

/** Where to look for an artifact, in order: local directories, the mirror, upstream. */
export function candidateSources(artifact: Artifact, mirrors: MirrorConfig): string[] {
  const out: string[] = [];
  for (const dir of mirrors.dirs) out.push(`file://${path.resolve(dir, artifact.file)}`);
  if (artifact.source.type === 'download') {
    const mirror = mirrors.bases[artifact.source.base];
    if (mirror) out.push(`${mirror}/${artifact.source.path}`);
    out.push(`${(mirrors.upstream ?? SOURCE_BASES)[artifact.source.base]}/${artifact.source.path}`);
  }
  if (artifact.source.type === 'image') {
    // registry+<base URL>#<reference>: pulled with the registry API, mirror first.
    const host = artifact.source.reference.split('/')[0] ?? '';
    const mirror = mirrors.registries?.[host];
    if (mirror) out.push(`registry+${mirror}#${artifact.source.reference}`);
    out.push(`registry+https://${host}#${artifact.source.reference}`);
  }
  return out;
}

export function artifactsRoot(): string {
  return cachePath('artifacts');
}

export function artifactPath(
  artifact: Pick<Artifact, 'id' | 'version' | 'file'>,
  root = artifactsRoot(),
): string {
  return path.join(root, `${artifact.id}-${artifact.version}`, artifact.file);
}

/** Where a downloaded file's SHA-256 is recorded when it enters the cache. */
export function recordedHashFile(file: string): string {
  return `${file}.sha256`;
}

/**
 * A file in the cache is usable when its hash equals the expected one; without an
 * expected hash (nothing pinned yet), when it equals the hash recorded as it was
 * downloaded: a file truncated or changed since then is fetched again, never used.
 */
export async function cachedAndVerified(
  file: string,
  expected: string | undefined,
): Promise<string | undefined> {
  if (!existsSync(file)) return undefined;
  const actual = await sha256File(file);
  if (expected && actual !== expected) return undefined;
  if (!expected) {
    const recorded = await readFile(recordedHashFile(file), 'utf8').catch(() => undefined);
    if (recorded !== undefined && recorded.trim() !== actual) return undefined;
  }
  return actual;
}

/** Network trouble or a server error: worth asking the same source again. A 404 is not. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof HttpError)) return false;
  const status = error.status;
  return status === undefined || status >= 500 || status === 429 || status === 408;
}

const ATTEMPTS_PER_SOURCE = 3;

export interface FetchOptions {
  /** HTTP(S) downloads; unit tests pass a fake. */
  fetcher?: Fetcher;
  expected: string | undefined;
  mirrors: MirrorConfig;
  root?: string;
  onProgress?: (progress: DownloadProgress & { source: string; text?: string }) => void;
  /** Backoff between attempts at one source: 2 s, then 4 s (tests pass a fake). */
  sleep?: (ms: number) => Promise<void>;
  retryDelayMs?: number;
}

export interface FetchResult {
  file: string;
  sha256: string;
  source: string;
  /** Bytes that crossed the network (0 when the cache already had it). */
  downloaded: number;
}

export async function fetchArtifact(
  artifact: Artifact,
  options: FetchOptions,
): Promise<FetchResult> {
  const dest = artifactPath(artifact, options.root);
  const cached = await cachedAndVerified(dest, options.expected);
  if (cached) return { file: dest, sha256: cached, source: 'cache', downloaded: 0 };
  if (existsSync(dest)) {
    // Present but does not verify (truncated, changed): never use it, fetch it again.
    options.onProgress?.({
      received: 0,
      total: undefined,
      source: 'cache',
      text: `${artifact.file} in the cache does not verify; fetching it again`,
    });
    await rm(dest);
    await rm(recordedHashFile(dest), { force: true });
  }

  await mkdir(path.dirname(dest), { recursive: true });
  const partial = `${dest}.partial`;
  const problems: string[] = [];
  let mismatch: string | undefined;
  const sleep = options.sleep ?? ((ms) => new Promise<void>((done) => setTimeout(done, ms)));
  /** Transient failures are retried with backoff before the next source is tried. */
  async function withRetries<T>(source: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await fn();
      } catch (error) {
        if (!isTransient(error) || attempt >= ATTEMPTS_PER_SOURCE) throw error;
        const delay = (options.retryDelayMs ?? 2000) * 2 ** (attempt - 1);
        options.onProgress?.({
          received: 0,
          total: undefined,
          source,
          text: `${(error as Error).message}; trying again in ${Math.round(delay / 1000)} s (attempt ${attempt + 1} of ${ATTEMPTS_PER_SOURCE})`,
        });
        await sleep(delay);
      }
    }
  }
  for (const source of candidateSources(artifact, options.mirrors)) {
    let downloaded = 0;
    try {
      if (source.startsWith('file://')) {
        const local = fileURLToPath(source);
        if (!existsSync(local)) {
          problems.push(`${source}: no such file`);
          continue;
        }
        await copyFile(local, partial);
      } else if (source.startsWith('registry+')) {
        const [baseUrl, reference] = source.slice('registry+'.length).split('#');
        await rm(partial, { force: true });
        await withRetries(source, () =>
          pullImage(reference ?? '', {
            out: partial,
            work: `${dest}.work`,
            baseUrl: baseUrl ?? '',
            ...(options.fetcher ? { fetcher: options.fetcher } : {}),
            onProgress: (text) =>
              options.onProgress?.({ received: 0, total: undefined, source, text }),
          }),
        );
        await rm(`${dest}.work`, { recursive: true, force: true });
      } else {
        // A retry resumes the partial file where the cut connection left it.
        const result = await withRetries(source, () =>
          (options.fetcher ?? httpFetcher).download(source, partial, {
            onProgress: (p) => options.onProgress?.({ ...p, source }),
          }),
        );
        downloaded = result.transferred;
      }
    } catch (error) {
      // Keep the partial file: the next attempt (or the next run) resumes it.
      problems.push(`${source}: ${(error as Error).message}`);
      continue;
    }
    const actual = await sha256File(partial);
    if (options.expected && actual !== options.expected) {
      await rm(partial, { force: true });
      mismatch = `${source} gave sha256 ${actual}, expected ${options.expected}`;
      problems.push(mismatch);
      continue;
    }
    await rename(partial, dest);
    await writeFile(recordedHashFile(dest), `${actual}\n`);
    return { file: dest, sha256: actual, source, downloaded };
  }
  if (mismatch) {
    throw new KlabError(
      'KLAB_CHECKSUM_MISMATCH',
      `${artifact.file} failed verification; the bad file was deleted`,
      {
        details: problems,
        hint: 'Use another mirror or a trusted offline bundle; see docs/troubleshooting.md#klab_checksum_mismatch.',
      },
    );
  }
  throw new KlabError(
    'KLAB_ARTIFACT_UNAVAILABLE',
    `no source could deliver ${artifact.file} (${artifact.id} ${artifact.version})`,
    {
      details: problems,
      hint:
        'Set a mirror in klab.yaml (mirrors.k8s / mirrors.github / mirrors.docker, or mirrors.dirs), ' +
        'import an offline bundle (klab artifacts import FILE), or use the mirror-only stack (stack: debian).',
    },
  );
}

/** klab.lock.json in the lab: checksums pinned on the first verified download. */
export interface LockFile {
  version: 1;
  pins: Record<string, { sha256: string; source: string; pinnedAt: string }>;
}

export function lockKey(stack: string, artifact: Pick<Artifact, 'id' | 'version'>): string {
  return `${stack}/${artifact.id}@${artifact.version}`;
}

export async function readLock(file: string): Promise<LockFile> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as LockFile;
    return parsed.version === 1 ? parsed : { version: 1, pins: {} };
  } catch {
    return { version: 1, pins: {} };
  }
}

export async function writeLock(file: string, lock: LockFile): Promise<void> {
  const sorted = Object.fromEntries(
    Object.entries(lock.pins).sort(([a], [b]) => a.localeCompare(b)),
  );
  // The lab directory may not exist yet (klab artifacts build --dir NEW before klab create).
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ version: 1, pins: sorted }, null, 2)}\n`);
}

export function expectedSha(stack: string, artifact: Artifact, lock: LockFile): string | undefined {
  return artifact.sha256 ?? lock.pins[lockKey(stack, artifact)]?.sha256;
}
