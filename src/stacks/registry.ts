/**
 * Pulls an image from a registry (Docker Registry HTTP API v2) without a Docker engine,
 * and writes it as a `docker load` archive: manifest.json, the image config, the layer
 * blobs as served (gzip; docker load decompresses them). Every manifest fetched by digest
 * and every blob is checked against its sha256 digest.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { httpFetcher } from '../adapters/http.js';
import { tarArchiver } from '../adapters/tar.js';
import { KlabError } from '../model/errors.js';
import { sha256, sha256File } from '../model/hash.js';
import type { Archiver, DownloadProgress, Fetcher } from '../model/ports.js';

export interface ImageReference {
  registry: string;
  repository: string;
  tag: string;
}

export function parseImageReference(reference: string): ImageReference {
  const match = /^([a-z0-9.-]+(?::\d+)?)\/([a-z0-9._/-]+):([A-Za-z0-9._-]+)$/.exec(reference);
  if (!match?.[1] || !match[2] || !match[3]) {
    throw new KlabError(
      'KLAB_USAGE',
      `"${reference}" is not a registry/repository:tag image reference`,
    );
  }
  return { registry: match[1], repository: match[2], tag: match[3] };
}

/** The name `docker images` shows (and a kubelet flag uses) for a reference. */
export function repoTag(ref: ImageReference): string {
  if (ref.registry === 'registry-1.docker.io' || ref.registry === 'docker.io') {
    const repo = ref.repository.startsWith('library/')
      ? ref.repository.slice('library/'.length)
      : ref.repository;
    return `${repo}:${ref.tag}`;
  }
  return `${ref.registry}/${ref.repository}:${ref.tag}`;
}

const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

interface Descriptor {
  digest: string;
  mediaType?: string;
  platform?: { os?: string; architecture?: string };
}

interface ManifestDoc {
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** `Bearer realm="...",service="...",scope="..."` -> its fields. */
export function parseAuthChallenge(header: string | undefined): Record<string, string> | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const fields: Record<string, string> = {};
  for (const match of header.matchAll(/(\w+)="([^"]*)"/g)) {
    if (match[1] && match[2] !== undefined) fields[match[1]] = match[2];
  }
  return fields.realm ? fields : undefined;
}

function digestHex(digest: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!match?.[1]) throw new KlabError('KLAB_CHECKSUM_MISMATCH', `unsupported digest ${digest}`);
  return match[1];
}

export async function pullImage(
  reference: string,
  options: {
    out: string;
    work: string;
    /** Base URL replacing https://<registry> (a registry mirror, or a test server). */
    baseUrl?: string;
    onProgress?: (text: string) => void;
    fetcher?: Fetcher;
    archiver?: Archiver;
  },
): Promise<void> {
  const fetcher = options.fetcher ?? httpFetcher;
  const ref = parseImageReference(reference);
  const base = (options.baseUrl ?? `https://${ref.registry}`).replace(/\/+$/, '');
  let authorization: string | undefined;

  const get = async (url: string, accept?: string) => {
    const headers: Record<string, string> = accept ? { Accept: accept } : {};
    let response = await fetcher.get(url, {
      ...headers,
      ...(authorization ? { Authorization: authorization } : {}),
    });
    if (response.status === 401 && !authorization) {
      const challenge = parseAuthChallenge(String(response.headers['www-authenticate'] ?? ''));
      if (!challenge?.realm)
        throw new KlabError('KLAB_ARTIFACT_UNAVAILABLE', `${url}: 401 without a token challenge`);
      const tokenUrl = new URL(challenge.realm);
      if (challenge.service) tokenUrl.searchParams.set('service', challenge.service);
      tokenUrl.searchParams.set('scope', challenge.scope ?? `repository:${ref.repository}:pull`);
      const tokenResponse = await fetcher.get(tokenUrl.toString());
      if (tokenResponse.status !== 200) {
        throw new KlabError(
          'KLAB_ARTIFACT_UNAVAILABLE',
          `token request to ${tokenUrl.host} failed (HTTP ${tokenResponse.status})`,
        );
      }
      const body = JSON.parse(tokenResponse.body.toString('utf8')) as {
        token?: string;
        access_token?: string;
      };
      authorization = `Bearer ${body.token ?? body.access_token ?? ''}`;
      response = await fetcher.get(url, { ...headers, Authorization: authorization });
    }
    if (response.status !== 200) {
      throw new KlabError('KLAB_ARTIFACT_UNAVAILABLE', `${url}: HTTP ${response.status}`);
    }
    return response;
  };

  const manifestUrl = (what: string) => `${base}/v2/${ref.repository}/manifests/${what}`;
  options.onProgress?.(`manifest of ${reference}`);
  let manifest = JSON.parse(
    (await get(manifestUrl(ref.tag), MANIFEST_TYPES)).body.toString('utf8'),
  ) as ManifestDoc;
  if (manifest.manifests) {
    const pick = manifest.manifests.find(
      (m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64',
    );
    if (!pick)
      throw new KlabError('KLAB_ARTIFACT_UNAVAILABLE', `${reference} has no linux/amd64 image`);
    const response = await get(manifestUrl(pick.digest), MANIFEST_TYPES);
    if (sha256(response.body) !== digestHex(pick.digest)) {
      throw new KlabError(
        'KLAB_CHECKSUM_MISMATCH',
        `the linux/amd64 manifest of ${reference} does not match its digest`,
      );
    }
    manifest = JSON.parse(response.body.toString('utf8')) as ManifestDoc;
  }
  if (!manifest.config || !manifest.layers) {
    throw new KlabError(
      'KLAB_ARTIFACT_UNAVAILABLE',
      `${reference}: unsupported manifest (${manifest.mediaType ?? 'no media type'})`,
    );
  }

  const stage = path.join(options.work, 'image');
  await mkdir(stage, { recursive: true });
  const blob = async (descriptor: Descriptor, name: string) => {
    const file = path.join(stage, name);
    const hex = digestHex(descriptor.digest);
    if (existsSync(file) && (await sha256File(file)) === hex) return;
    const partial = `${file}.partial`;
    await fetcher.download(`${base}/v2/${ref.repository}/blobs/${descriptor.digest}`, partial, {
      headers: authorization ? { Authorization: authorization } : {},
      onProgress: (p: DownloadProgress) =>
        options.onProgress?.(
          `${name.slice(0, 19)}: ${(p.received / 1048576).toFixed(1)} MiB${p.total ? ` of ${(p.total / 1048576).toFixed(1)}` : ''}`,
        ),
    });
    if ((await sha256File(partial)) !== hex) {
      await rm(partial, { force: true });
      throw new KlabError(
        'KLAB_CHECKSUM_MISMATCH',
        `a layer of ${reference} does not match its digest ${descriptor.digest}`,
      );
    }
    await rename(partial, file);
  };

  const configName = `${digestHex(manifest.config.digest)}.json`;
  await blob(manifest.config, configName);
  const layerNames: string[] = [];
  for (const layer of manifest.layers) {
    const name = `${digestHex(layer.digest)}.tar.gz`;
    await blob(layer, name);
    layerNames.push(name);
  }
  await writeFile(
    path.join(stage, 'manifest.json'),
    JSON.stringify([{ Config: configName, RepoTags: [repoTag(ref)], Layers: layerNames }]),
  );
  await (options.archiver ?? tarArchiver).tar(
    [
      '-C',
      stage,
      '--owner=0',
      '--group=0',
      '--mtime=@0',
      '-cf',
      options.out,
      'manifest.json',
      configName,
      ...layerNames,
    ],
    { code: 'KLAB_ARTIFACT_UNAVAILABLE', what: `writing ${options.out}` },
    30 * 60_000,
  );
  await rm(stage, { recursive: true, force: true });
}
