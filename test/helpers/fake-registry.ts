/**
 * A tiny Docker Registry v2 on 127.0.0.1 for tests: bearer-token auth, a manifest list
 * (amd64 + arm64), blobs redirected to another host name (localhost) like a CDN.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImage {
  repository: string;
  tag: string;
  config: Buffer;
  /** Gzipped layer tarballs. */
  layers: Buffer[];
  /** Serve this instead of the first layer (to test digest checks). */
  corruptFirstLayer?: boolean;
}

const sha = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface FakeRegistry {
  base: string;
  requests: { path: string; authorization: string | undefined; host: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeRegistry(images: FakeImage[]): Promise<FakeRegistry> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { type: string; body: Buffer }>();
  for (const image of images) {
    blobs.set(sha(image.config), image.config);
    image.layers.forEach((layer, index) => {
      blobs.set(
        sha(layer),
        index === 0 && image.corruptFirstLayer ? Buffer.concat([layer, Buffer.from('x')]) : layer,
      );
    });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          size: image.config.length,
          digest: sha(image.config),
        },
        layers: image.layers.map((layer) => ({
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
          size: layer.length,
          digest: sha(layer),
        })),
      }),
    );
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifests: [
          { digest: sha('arm64-elsewhere'), platform: { os: 'linux', architecture: 'arm64' } },
          { digest: sha(manifest), platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    );
    const docker = 'application/vnd.docker.distribution.manifest';
    manifests.set(`${image.repository}:${image.tag}`, {
      type: `${docker}.list.v2+json`,
      body: list,
    });
    manifests.set(`${image.repository}:${sha(manifest)}`, {
      type: `${docker}.v2+json`,
      body: manifest,
    });
  }

  const requests: FakeRegistry['requests'] = [];
  let port = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({
      path: url.pathname,
      authorization: req.headers.authorization,
      host: req.headers.host,
    });
    if (url.pathname === '/token') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ token: 'klab-test-token' }));
      return;
    }
    if (url.pathname.startsWith('/cdn/')) {
      const blob = blobs.get(url.pathname.slice('/cdn/'.length));
      if (!blob) res.writeHead(404).end();
      else res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
      return;
    }
    if (req.headers.authorization !== 'Bearer klab-test-token') {
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="fake",scope="repository:x:pull"`,
        })
        .end();
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (m?.[2] === 'manifests') {
      const entry = manifests.get(`${m[1]}:${m[3]}`);
      if (!entry) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': entry.type }).end(entry.body);
      return;
    }
    if (m?.[2] === 'blobs' && m[3]) {
      res.writeHead(307, { location: `http://localhost:${port}/cdn/${m[3]}` }).end();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
