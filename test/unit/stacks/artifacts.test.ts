import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, httpGet, noProxyMatches, proxyFor } from '../../../src/adapters/http.js';
import { KlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';
import { validateSpec } from '../../../src/model/spec-file.js';
import {
  artifactPath,
  candidateSources,
  fetchArtifact,
  isTransient,
  type LockFile,
  type MirrorConfig,
  mirrorConfig,
} from '../../../src/stacks/cache.js';
import { loadStack } from '../../../src/stacks/index.js';
import { type Artifact, type Stack, StackSchema } from '../../../src/stacks/manifest.js';
import { exportBundle, importBundle, pullStack, verifyCache } from '../../../src/stacks/ops.js';

const PAYLOAD = randomBytes(3 * 1024 * 1024 + 123);
const SHA = createHash('sha256').update(PAYLOAD).digest('hex');
/** Byte for byte (toEqual walks a 3 MB Buffer element by element: a minute of CPU). */
const samePayload = (bytes: Buffer) => bytes.equals(PAYLOAD);

interface Seen {
  url: string;
  range: string | undefined;
}
const seen: Seen[] = [];
let cutNext = false;
let flakyFailures = 0;
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range });
    if (req.url?.startsWith('/missing/')) {
      res.writeHead(404).end();
      return;
    }
    if (req.url?.startsWith('/flaky/') && flakyFailures > 0) {
      flakyFailures -= 1;
      res.writeHead(503).end();
      return;
    }
    const body = req.url?.startsWith('/corrupt/') ? Buffer.from(PAYLOAD).fill(7, 0, 10) : PAYLOAD;
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    res.writeHead(match ? 206 : 200, {
      'content-length': String(body.length - start),
      ...(match ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (cutNext) {
      cutNext = false;
      res.write(body.subarray(start, start + 1024 * 1024));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server.close();
});

function artifact(id: string, sha256?: string): Artifact {
  return {
    id,
    kind: 'archive',
    version: '1.0',
    description: 'test artifact',
    file: `${id}.tar.gz`,
    source: { type: 'download', base: 'k8s', path: `v1/${id}.tar.gz` },
    ...(sha256 ? { sha256 } : {}),
    checksumSource: 'test',
    install: { on: 'all', to: '/tmp' },
  };
}

/** Upstream points at the local server too: tests never leave this machine. */
function mirrors(upstreamPrefix: string, extra: Partial<MirrorConfig> = {}): MirrorConfig {
  const up = `${base}/${upstreamPrefix}`;
  return { bases: {}, dirs: [], upstream: { k8s: up, github: up, docker: up }, ...extra };
}

async function root(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'klab-cache-'));
}

describe('stack manifests', () => {
  it('both stacks validate against the schema', () => {
    expect(loadStack('v1.11.1').artifacts.length).toBeGreaterThan(5);
    expect(loadStack('debian').artifacts.every((a) => a.source.type === 'build')).toBe(true);
  });

  it('v1.11.1 carries the official Kubernetes checksums exactly', () => {
    const stack = loadStack('v1.11.1');
    const sha = (id: string) => stack.artifacts.find((a) => a.id === id)?.sha256;
    expect(sha('kubernetes-server')).toBe(
      'f120baa4b37323a8d7cd6e8027f7b19a544f528d2cae4028366ffbb28dc68d8a',
    );
    expect(sha('kubernetes-node')).toBe(
      '45fae35f7c3b23ff8557dcf638eb631dabbcc46a804534ca9d1043d846ec4408',
    );
    expect(sha('kubernetes-client')).toBe(
      'a6c7537434fedde75fb77c593b2d2978be1aed00896a354120c5b7164e54aa99',
    );
    expect(stack.artifacts.find((a) => a.id === 'etcd')?.sha256).toBeUndefined();
  });

  it('the schema rejects a malformed checksum and duplicate ids', () => {
    const bad = { ...loadStack('v1.11.1') };
    const broken = StackSchema.safeParse({
      ...bad,
      artifacts: [{ ...bad.artifacts[0], sha256: 'XYZ' }, bad.artifacts[0], bad.artifacts[0]],
    });
    expect(broken.success).toBe(false);
    const messages = broken.success ? [] : broken.error.issues.map((i) => i.message);
    expect(messages).toContain('must be 64 lower-case hex digits');
    expect(messages.some((m) => m.startsWith('duplicate id'))).toBe(true);
  });
});

describe('mirror selection', () => {
  it('tries local directories, then the mirror, then upstream', () => {
    const a = artifact('kube', SHA);
    expect(
      candidateSources(a, { bases: { k8s: 'https://mirror.example/k8s' }, dirs: ['/srv/bundle'] }),
    ).toEqual([
      'file:///srv/bundle/kube.tar.gz',
      'https://mirror.example/k8s/v1/kube.tar.gz',
      'https://dl.k8s.io/v1/kube.tar.gz',
    ]);
  });

  it('reads mirrors from klab.yaml, overridden by the environment', () => {
    const spec = validateSpec(
      { mirrors: { k8s: 'https://a.example/k8s/', dirs: ['/x'] } },
      'l',
      't',
    );
    expect(mirrorConfig(spec, {})).toEqual({
      bases: { k8s: 'https://a.example/k8s' },
      dirs: ['/x'],
    });
    const env = {
      KLAB_MIRROR_K8S: 'https://b.example',
      KLAB_MIRROR_GITHUB: 'file:///gh',
      KLAB_ARTIFACT_DIRS: '/y:/z',
    };
    expect(mirrorConfig(spec, env)).toEqual({
      bases: { k8s: 'https://b.example', github: 'file:///gh' },
      dirs: ['/y', '/z', '/x'],
    });
  });
});

describe('fetching into the cache', () => {
  it('downloads, verifies, and then serves from the cache with zero bytes downloaded', async () => {
    const r = await root();
    const first = await fetchArtifact(artifact('a', SHA), {
      expected: SHA,
      mirrors: mirrors('ok'),
      root: r,
    });
    expect(first.downloaded).toBe(PAYLOAD.length);
    expect(first.sha256).toBe(SHA);
    expect(samePayload(await readFile(first.file))).toBe(true);
    const second = await fetchArtifact(artifact('a', SHA), {
      expected: SHA,
      mirrors: mirrors('ok'),
      root: r,
    });
    expect([second.source, second.downloaded]).toEqual(['cache', 0]);
  });

  it('refuses a mismatching download, keeps nothing, and says why', async () => {
    const r = await root();
    const error = await fetchArtifact(artifact('b', SHA), {
      expected: SHA,
      mirrors: mirrors('corrupt'),
      root: r,
    }).catch((e) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_CHECKSUM_MISMATCH');
    expect((error as KlabError).details[0]).toMatch(new RegExp(`expected ${SHA}`));
    expect(existsSync(artifactPath(artifact('b'), r))).toBe(false);
    expect(existsSync(`${artifactPath(artifact('b'), r)}.partial`)).toBe(false);
  });

  it('deletes a cached file that no longer verifies instead of using it', async () => {
    const r = await root();
    const file = artifactPath(artifact('c'), r);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'tampered');
    const result = await fetchArtifact(artifact('c', SHA), {
      expected: SHA,
      mirrors: mirrors('ok'),
      root: r,
    });
    expect(result.source).not.toBe('cache');
    expect(samePayload(await readFile(file))).toBe(true);
  });

  it('resumes an interrupted download with an HTTP Range request, within the same run', async () => {
    const r = await root();
    seen.length = 0;
    cutNext = true;
    const delays: number[] = [];
    const result = await fetchArtifact(artifact('d', SHA), {
      expected: SHA,
      mirrors: mirrors('resume'),
      root: r,
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    // The cut connection was retried after 2 s, asking only for the missing bytes.
    expect(delays).toEqual([2000]);
    expect(seen).toHaveLength(2);
    const kept = Number(/^bytes=(\d+)-$/.exec(seen[1]?.range ?? '')?.[1]);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(PAYLOAD.length);
    expect(samePayload(await readFile(result.file))).toBe(true);
  });

  it('falls back from a missing local dir and a failing mirror to the next source', async () => {
    const r = await root();
    seen.length = 0;
    const m = mirrors('ok', { dirs: ['/nonexistent-dir'], bases: { k8s: `${base}/missing` } });
    const result = await fetchArtifact(artifact('e', SHA), { expected: SHA, mirrors: m, root: r });
    expect(result.source).toBe(`${base}/ok/v1/e.tar.gz`);
    expect(seen.map((s) => s.url)).toEqual(['/missing/v1/e.tar.gz', '/ok/v1/e.tar.gz']);
  });

  it('falls back past a corrupt mirror to a good source', async () => {
    const r = await root();
    const m = mirrors('ok', { bases: { k8s: `${base}/corrupt` } });
    expect(
      (await fetchArtifact(artifact('f', SHA), { expected: SHA, mirrors: m, root: r })).source,
    ).toBe(`${base}/ok/v1/f.tar.gz`);
  });

  it('takes files from a local directory and from file:// mirrors', async () => {
    const r = await root();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-dir-'));
    await writeFile(path.join(dir, 'g.tar.gz'), PAYLOAD);
    const fromDir = await fetchArtifact(artifact('g', SHA), {
      expected: SHA,
      mirrors: mirrors('missing', { dirs: [dir] }),
      root: r,
    });
    expect([fromDir.source, fromDir.downloaded]).toEqual([`file://${dir}/g.tar.gz`, 0]);
    const layout = await mkdtemp(path.join(os.tmpdir(), 'klab-mirror-'));
    await mkdir(path.join(layout, 'v1'));
    await writeFile(path.join(layout, 'v1', 'h.tar.gz'), PAYLOAD);
    const viaFileUrl = await fetchArtifact(artifact('h', SHA), {
      expected: SHA,
      mirrors: mirrors('missing', { bases: { k8s: `file://${layout}` } }),
      root: r,
    });
    expect(viaFileUrl.source).toBe(`file://${layout}/v1/h.tar.gz`);
  });
});

describe('pull, verify and offline bundles', () => {
  const stack = StackSchema.parse({
    name: 'v1.11.1',
    title: 'test stack',
    versions: { kubernetes: 'v1', etcd: 'v1', flannel: 'v1', docker: 'v1' },
    differences: [],
    artifacts: [
      artifact('kube', SHA),
      artifact('etcd'),
      { ...artifact('img'), source: { type: 'build', recipe: 'local' } },
    ],
  }) as Stack;

  it('pulls, pins an artifact without official checksum, and downloads nothing the second time', async () => {
    const r = await root();
    const lock: LockFile = { version: 1, pins: {} };
    const first = await pullStack(stack, lock, mirrors('ok'), nullSink, r);
    expect(first.bytesDownloaded).toBe(2 * PAYLOAD.length);
    expect(lock.pins['v1.11.1/etcd@1.0']?.sha256).toBe(SHA);
    expect(first.skipped.map((s) => s.id)).toEqual(['img']);
    const second = await pullStack(stack, lock, mirrors('ok'), nullSink, r);
    expect(second.bytesDownloaded).toBe(0);
  });

  it('round-trips an offline bundle into an empty cache, verified; a tampered bundle imports nothing', async () => {
    const r = await root();
    const lock: LockFile = { version: 1, pins: {} };
    const buildOnly = { ...stack, artifacts: stack.artifacts.slice(0, 2) } as Stack;
    await pullStack(buildOnly, lock, mirrors('ok'), nullSink, r);
    const boxDir = await mkdtemp(path.join(os.tmpdir(), 'klab-box-'));
    const boxFile = path.join(boxDir, 'test.box');
    await writeFile(boxFile, 'a box');
    const bundle = path.join(
      await mkdtemp(path.join(os.tmpdir(), 'klab-bundle-')),
      'lab.bundle.tar',
    );
    const index = await exportBundle(buildOnly, lock, bundle, {
      root: r,
      box: { name: 'klab/test', file: boxFile },
    });
    expect(index.artifacts.map((a) => a.id)).toEqual(['kube', 'etcd']);

    const fresh = await root();
    const freshLock: LockFile = { version: 1, pins: {} };
    const imported = await importBundle(() => buildOnly, freshLock, bundle, { root: fresh });
    expect(imported.imported).toEqual(['kube', 'etcd']);
    expect(imported.boxName).toBe('klab/test');
    expect(await readFile(imported.boxFile ?? '', 'utf8')).toBe('a box');
    expect(freshLock.pins['v1.11.1/etcd@1.0']?.sha256).toBe(SHA);
    expect((await verifyCache(buildOnly, freshLock, fresh)).map((row) => row.state)).toEqual([
      'ok',
      'ok',
    ]);

    const strict = {
      ...buildOnly,
      artifacts: [{ ...artifact('kube', 'f'.repeat(64)) }, buildOnly.artifacts[1]],
    } as Stack;
    const other = await root();
    const error = await importBundle(() => strict, { version: 1, pins: {} }, bundle, {
      root: other,
    }).catch((e) => e);
    expect((error as KlabError).code).toBe('KLAB_CHECKSUM_MISMATCH');
    expect(existsSync(artifactPath(artifact('kube'), other))).toBe(false);
  });

  it('carries a box that is itself a stack artifact only once', async () => {
    const r = await root();
    const lock: LockFile = { version: 1, pins: {} };
    const withBox = {
      ...stack,
      artifacts: [{ ...artifact('box', SHA), kind: 'box' as const }],
    } as Stack;
    await pullStack(withBox, lock, mirrors('ok'), nullSink, r);
    const bundle = path.join(await mkdtemp(path.join(os.tmpdir(), 'klab-bundle-')), 'b.tar');
    const index = await exportBundle(withBox, lock, bundle, {
      root: r,
      box: { name: 'klab/x', file: artifactPath(artifact('box'), r) },
    });
    expect(index.box).toEqual({ name: 'klab/x', file: 'box-1.0/box.tar.gz', sha256: SHA });
    const { execa } = await import('execa');
    expect(String((await execa('tar', ['-tf', bundle])).stdout).split('\n')).toEqual([
      'klab-bundle.json',
      'box-1.0/box.tar.gz',
    ]);
  });

  it('refuses to export what is not in the cache', async () => {
    const error = await exportBundle(
      stack,
      { version: 1, pins: {} },
      path.join(os.tmpdir(), 'x.tar'),
      { root: await root() },
    ).catch((e) => e);
    expect((error as KlabError).code).toBe('KLAB_ARTIFACT_UNAVAILABLE');
    expect((error as KlabError).details).toHaveLength(3);
  });
});

describe('downloads over a bad network', () => {
  it('retries a transient failure with backoff before moving on, and says so', async () => {
    const r = await root();
    flakyFailures = 2;
    const delays: number[] = [];
    const notes: string[] = [];
    const result = await fetchArtifact(artifact('flaky', SHA), {
      expected: SHA,
      mirrors: mirrors('flaky'),
      root: r,
      sleep: async (ms) => {
        delays.push(ms);
      },
      onProgress: (p) => {
        if (p.text) notes.push(p.text);
      },
    });
    expect(result.sha256).toBe(SHA);
    expect(delays).toEqual([2000, 4000]);
    expect(notes[0]).toMatch(/HTTP 503 .*; trying again in 2 s \(attempt 2 of 3\)/);
  });

  it('does not retry a 404: the next source is tried at once', async () => {
    const r = await root();
    const delays: number[] = [];
    const error = (await fetchArtifact(artifact('gone', SHA), {
      expected: SHA,
      mirrors: mirrors('missing'),
      root: r,
      sleep: async (ms) => {
        delays.push(ms);
      },
    }).catch((e: unknown) => e)) as KlabError;
    expect(error.code).toBe('KLAB_ARTIFACT_UNAVAILABLE');
    expect(delays).toEqual([]);
    expect(isTransient(new HttpError('HTTP 404', 404))).toBe(false);
    expect(isTransient(new HttpError('connection reset'))).toBe(true);
  });

  it('a cached file truncated after its download (nothing pinned) is detected and fetched again', async () => {
    const r = await root();
    const first = await fetchArtifact(artifact('trunc'), {
      expected: undefined,
      mirrors: mirrors('ok'),
      root: r,
    });
    expect(await readFile(`${first.file}.sha256`, 'utf8')).toBe(`${SHA}\n`);
    const whole = await readFile(first.file);
    await writeFile(first.file, whole.subarray(0, 1000));
    const again = await fetchArtifact(artifact('trunc'), {
      expected: undefined,
      mirrors: mirrors('ok'),
      root: r,
    });
    expect(again.source).not.toBe('cache');
    expect(again.sha256).toBe(SHA);
    expect((await stat(again.file)).size).toBe(PAYLOAD.length);
  });
});

describe('proxies from the environment', () => {
  it('follows HTTP_PROXY / HTTPS_PROXY and NO_PROXY (hosts, domains, CIDRs, *)', () => {
    const env = {
      HTTP_PROXY: 'http://proxy.lan:3128',
      https_proxy: 'proxy.lan:3129',
      NO_PROXY: '.corp.example,10.0.0.0/8,localhost',
    };
    expect(proxyFor('http://dl.k8s.io/x', env)?.host).toBe('proxy.lan:3128');
    expect(proxyFor('https://github.com/x', env)?.host).toBe('proxy.lan:3129');
    expect(proxyFor('https://mirror.corp.example/x', env)).toBeUndefined();
    expect(proxyFor('http://10.1.2.3/x', env)).toBeUndefined();
    expect(proxyFor('http://localhost:8080/x', env)).toBeUndefined();
    expect(proxyFor('http://dl.k8s.io/x', { ...env, NO_PROXY: '*' })).toBeUndefined();
    expect(proxyFor('http://dl.k8s.io/x', {})).toBeUndefined();
    expect(noProxyMatches('a.b.example', 'b.example')).toBe(true);
    expect(noProxyMatches('notb.example', 'b.example')).toBe(false);
    expect(() => proxyFor('http://x/y', { HTTP_PROXY: 'socks5://p:1080' })).toThrow(
      /not an http:\/\/ proxy/,
    );
  });

  it('downloads through an http proxy on this machine, which sees the whole URL', async () => {
    const through: string[] = [];
    const proxy = http.createServer((req, res) => {
      through.push(req.url ?? '');
      const upstream = http.get(req.url ?? '', { headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as AddressInfo).port;
    const saved = {
      HTTP_PROXY: process.env.HTTP_PROXY,
      NO_PROXY: process.env.NO_PROXY,
      no_proxy: process.env.no_proxy,
    };
    process.env.HTTP_PROXY = `http://127.0.0.1:${port}`;
    process.env.NO_PROXY = '';
    process.env.no_proxy = '';
    try {
      const r = await root();
      const result = await fetchArtifact(artifact('viaproxy', SHA), {
        expected: SHA,
        mirrors: mirrors('ok'),
        root: r,
      });
      expect(result.sha256).toBe(SHA);
      expect(through).toEqual([`${base}/ok/v1/viaproxy.tar.gz`]);
      // Lab traffic never takes the proxy.
      const direct = await httpGet(`${base}/ok/x`, {}, 0, { proxy: false });
      expect(direct.status).toBe(200);
      expect(through).toHaveLength(1);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      proxy.close();
    }
  });
});
