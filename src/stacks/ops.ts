/** klab artifacts list | pull | verify | export | import. */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tarArchiver } from '../adapters/tar.js';
import { KlabError } from '../model/errors.js';
import { type EventSink, task } from '../model/events.js';
import { sha256File } from '../model/hash.js';
import type { Archiver } from '../model/ports.js';
import {
  artifactPath,
  artifactsRoot,
  cachedAndVerified,
  expectedSha,
  fetchArtifact,
  type LockFile,
  lockKey,
  type MirrorConfig,
} from './cache.js';
import type { Artifact, Stack } from './manifest.js';

export interface ArtifactStatus {
  artifact: Artifact;
  source: string;
  checksum: 'official' | 'pinned' | 'unpinned';
  cached: boolean;
  verified: boolean;
}

export function describeSource(artifact: Artifact): string {
  switch (artifact.source.type) {
    case 'download':
      return `${artifact.source.base}: ${artifact.source.path}`;
    case 'image':
      return `image ${artifact.source.reference}`;
    case 'build':
      return `built: ${artifact.source.recipe}`;
  }
}

export async function artifactStatuses(
  stack: Stack,
  lock: LockFile,
  root = artifactsRoot(),
): Promise<ArtifactStatus[]> {
  return Promise.all(
    stack.artifacts.map(async (artifact) => {
      const expected = expectedSha(stack.name, artifact, lock);
      const file = artifactPath(artifact, root);
      const cached = existsSync(file);
      const verified =
        cached && expected !== undefined && (await cachedAndVerified(file, expected)) !== undefined;
      return {
        artifact,
        source: describeSource(artifact),
        checksum: artifact.sha256
          ? 'official'
          : lock.pins[lockKey(stack.name, artifact)]
            ? 'pinned'
            : 'unpinned',
        cached,
        verified,
      };
    }),
  );
}

export interface PullResult {
  fetched: { id: string; source: string; downloaded: number }[];
  bytesDownloaded: number;
  /** Artifacts this command cannot fetch (built locally, or images). */
  skipped: { id: string; why: string }[];
}

/** Fetch every downloadable artifact of the stack into the cache; pin first downloads. */
export async function pullStack(
  stack: Stack,
  lock: LockFile,
  mirrors: MirrorConfig,
  sink: EventSink,
  root = artifactsRoot(),
): Promise<PullResult> {
  const result: PullResult = { fetched: [], bytesDownloaded: 0, skipped: [] };
  const failures: KlabError[] = [];
  for (const artifact of stack.artifacts) {
    if (artifact.source.type === 'build') {
      result.skipped.push({
        id: artifact.id,
        why: 'built locally: klab artifacts build --stack debian',
      });
      continue;
    }
    try {
      const fetched = await task(
        sink,
        `Fetch ${artifact.file}`,
        async (update) => {
          let lastPct = -1;
          return fetchArtifact(artifact, {
            expected: expectedSha(stack.name, artifact, lock),
            mirrors,
            root,
            onProgress: (p) => {
              if (p.text) {
                update(p.text);
                return;
              }
              if (!p.total) return;
              const pct = Math.floor((p.received / p.total) * 100);
              if (pct >= lastPct + 5) {
                lastPct = pct;
                update(`${pct}% of ${(p.total / 1048576).toFixed(1)} MiB from ${p.source}`);
              }
            },
          });
        },
        {
          describe: (r) =>
            r.downloaded === 0 && r.source === 'cache'
              ? 'cached, verified'
              : `verified, from ${r.source}`,
          code: (r) =>
            r.downloaded === 0 && r.source === 'cache' ? 'ARTIFACT_CACHED' : 'ARTIFACT_FETCHED',
          subject: artifact.id,
        },
      );
      const key = lockKey(stack.name, artifact);
      if (!artifact.sha256 && !lock.pins[key]) {
        lock.pins[key] = {
          sha256: fetched.sha256,
          source: fetched.source,
          pinnedAt: new Date().toISOString(),
        };
        sink.emit({
          kind: 'notice',
          code: 'ARTIFACT_PINNED',
          level: 'info',
          text: `${artifact.file} has no official checksum: pinned ${fetched.sha256.slice(0, 16)}... in klab.lock.json`,
        });
      }
      result.fetched.push({
        id: artifact.id,
        source: fetched.source,
        downloaded: fetched.downloaded,
      });
      result.bytesDownloaded += fetched.downloaded;
    } catch (error) {
      if (error instanceof KlabError) failures.push(error);
      else throw error;
    }
  }
  if (failures.length > 0) {
    const first = failures[0] as KlabError;
    throw new KlabError(first.code, `${failures.length} artifact(s) could not be fetched`, {
      details: failures.flatMap((f) => [f.message, ...f.details.map((d) => `  ${d}`)]),
      hint: first.hint,
    });
  }
  return result;
}

/** Re-hash every cached artifact; a file that does not match is deleted. */
export async function verifyCache(stack: Stack, lock: LockFile, root = artifactsRoot()) {
  const rows: { id: string; state: 'ok' | 'missing' | 'unpinned' | 'deleted' }[] = [];
  for (const artifact of stack.artifacts) {
    const file = artifactPath(artifact, root);
    const expected = expectedSha(stack.name, artifact, lock);
    if (!existsSync(file)) rows.push({ id: artifact.id, state: 'missing' });
    else if (!expected) rows.push({ id: artifact.id, state: 'unpinned' });
    else if ((await sha256File(file)) === expected) rows.push({ id: artifact.id, state: 'ok' });
    else {
      await rm(file, { force: true });
      rows.push({ id: artifact.id, state: 'deleted' });
    }
  }
  return rows;
}

export interface BundleIndex {
  format: 'klab-bundle';
  version: 1;
  stack: string;
  createdAt: string;
  artifacts: { id: string; version: string; file: string; sha256: string; path: string }[];
  box?: { name: string; file: string; sha256: string } | undefined;
}

const BUNDLE_FAILURE = {
  code: 'KLAB_ARTIFACT_UNAVAILABLE',
  what: 'while handling the bundle',
  hint: 'Check free disk space where the bundle and ~/.cache/klab live, and that the bundle file is complete.',
} as const;

function tar(args: string[], archiver: Archiver = tarArchiver): Promise<void> {
  return archiver.tar(args, BUNDLE_FAILURE);
}

/** An offline bundle: the stack's verified artifacts (and a box), one tar file. */
export async function exportBundle(
  stack: Stack,
  lock: LockFile,
  file: string,
  options: { root?: string; box?: { name: string; file: string } } = {},
): Promise<BundleIndex> {
  const root = options.root ?? artifactsRoot();
  const index: BundleIndex = {
    format: 'klab-bundle',
    version: 1,
    stack: stack.name,
    createdAt: new Date().toISOString(),
    artifacts: [],
  };
  const missing: string[] = [];
  for (const artifact of stack.artifacts) {
    const source = artifactPath(artifact, root);
    const expected = expectedSha(stack.name, artifact, lock);
    const actual = expected ? await cachedAndVerified(source, expected) : undefined;
    if (!actual) {
      missing.push(
        `${artifact.id} (${artifact.file}): ${existsSync(source) ? 'not verified' : 'not in the cache'}`,
      );
      continue;
    }
    index.artifacts.push({
      id: artifact.id,
      version: artifact.version,
      file: artifact.file,
      sha256: actual,
      path: path.relative(root, source),
    });
  }
  if (missing.length > 0) {
    throw new KlabError(
      'KLAB_ARTIFACT_UNAVAILABLE',
      `the cache is missing ${missing.length} artifact(s) of ${stack.name}`,
      {
        details: missing,
        hint: 'Run "klab artifacts pull" (or build them) first; a bundle only carries verified files.',
      },
    );
  }
  const staging = await mkdtemp(path.join(path.dirname(path.resolve(file)), '.klab-bundle-'));
  try {
    const members = ['klab-bundle.json', ...index.artifacts.map((a) => a.path)];
    // A stack whose artifacts include the box carries it once, as that artifact.
    const boxArtifact = index.artifacts.find(
      (entry) => stack.artifacts.find((a) => a.id === entry.id)?.kind === 'box',
    );
    if (options.box && boxArtifact) {
      index.box = { name: options.box.name, file: boxArtifact.path, sha256: boxArtifact.sha256 };
    } else if (options.box) {
      const boxName = `boxes/${path.basename(options.box.file)}`;
      index.box = {
        name: options.box.name,
        file: boxName,
        sha256: await sha256File(options.box.file),
      };
    }
    await writeFile(path.join(staging, 'klab-bundle.json'), `${JSON.stringify(index, null, 2)}\n`);
    await tar([
      '-cf',
      path.resolve(file),
      '-C',
      staging,
      'klab-bundle.json',
      '-C',
      root,
      ...members.slice(1),
    ]);
    if (options.box && index.box && !boxArtifact) {
      await mkdir(path.join(staging, 'boxes'), { recursive: true });
      await copyFile(options.box.file, path.join(staging, index.box.file));
      await tar(['-rf', path.resolve(file), '-C', staging, index.box.file]);
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return index;
}

/** Import a bundle: verify every file against the bundle index and the manifest, then cache it. */
export async function importBundle(
  stackFor: (name: string) => Stack,
  lock: LockFile,
  file: string,
  options: { root?: string } = {},
): Promise<{
  index: BundleIndex;
  imported: string[];
  boxFile?: string | undefined;
  boxName?: string | undefined;
  extracted: string;
}> {
  const root = options.root ?? artifactsRoot();
  await mkdir(root, { recursive: true });
  const extracted = await mkdtemp(path.join(root, '.import-'));
  await tar(['-xf', path.resolve(file), '-C', extracted]);
  const index = JSON.parse(
    await readFile(path.join(extracted, 'klab-bundle.json'), 'utf8'),
  ) as BundleIndex;
  if (index.format !== 'klab-bundle' || index.version !== 1) {
    throw new KlabError('KLAB_USAGE', `${file} is not a klab bundle`, {
      hint: 'Bundles are made with "klab artifacts export FILE" on a host that has the artifacts.',
    });
  }
  const stack = stackFor(index.stack);
  const imported: string[] = [];
  for (const entry of index.artifacts) {
    const artifact = stack.artifacts.find((a) => a.id === entry.id && a.version === entry.version);
    if (!artifact)
      throw new KlabError(
        'KLAB_USAGE',
        `the bundle has ${entry.id} ${entry.version}, which ${stack.name} does not use`,
      );
    const official = expectedSha(stack.name, artifact, lock);
    const actual = await sha256File(path.join(extracted, entry.path));
    if (actual !== entry.sha256 || (official && actual !== official)) {
      throw new KlabError(
        'KLAB_CHECKSUM_MISMATCH',
        `${entry.file} in the bundle failed verification; nothing was imported`,
        {
          details: [
            `sha256 ${actual}`,
            `bundle says ${entry.sha256}`,
            ...(official ? [`expected ${official}`] : []),
          ],
        },
      );
    }
  }
  for (const entry of index.artifacts) {
    const artifact = stack.artifacts.find(
      (a) => a.id === entry.id && a.version === entry.version,
    ) as Artifact;
    const dest = artifactPath(artifact, root);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(path.join(extracted, entry.path), dest);
    const key = lockKey(stack.name, artifact);
    if (!artifact.sha256 && !lock.pins[key]) {
      lock.pins[key] = {
        sha256: entry.sha256,
        source: `bundle ${path.basename(file)}`,
        pinnedAt: new Date().toISOString(),
      };
    }
    imported.push(entry.id);
  }
  let boxFile: string | undefined;
  if (index.box) {
    boxFile = path.join(extracted, index.box.file);
    if ((await sha256File(boxFile)) !== index.box.sha256) {
      throw new KlabError('KLAB_CHECKSUM_MISMATCH', `the box in ${file} failed verification`, {
        hint: 'The artifacts were imported, the box was not. Copy the bundle again (it may be truncated) and re-import it.',
      });
    }
  }
  return { index, imported, boxFile, boxName: index.box?.name, extracted };
}
