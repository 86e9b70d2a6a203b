/**
 * Writes a `docker load`-able image archive (docker-archive format: manifest.json, the
 * image config, one layer tarball) from a root filesystem directory, without a Docker
 * engine or a registry.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tarArchiver } from '../adapters/tar.js';
import { sha256, sha256File } from '../model/hash.js';
import type { Archiver } from '../model/ports.js';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  ExposedPorts?: Record<string, object>;
  WorkingDir?: string;
  StopSignal?: string;
}

const FAILURE = {
  code: 'KLAB_STACK_BUILD_FAILED',
  what: 'while writing an image archive',
} as const;

function tar(args: string[], archiver: Archiver): Promise<void> {
  return archiver.tar(args, FAILURE, 30 * 60_000);
}

/** The image config document (pure; reproducible: fixed creation time). */
export function imageConfigJson(diffId: string, config: ImageConfig, createdBy: string): string {
  return JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...config,
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: createdBy }],
  });
}

export async function writeImageArchive(options: {
  rootDir: string;
  out: string;
  repoTag: string;
  config: ImageConfig;
  work: string;
  createdBy: string;
  /** gzip the archive (docker load reads it as is): smaller to keep and to send. */
  gzip?: boolean;
  archiver?: Archiver;
}): Promise<{ imageId: string }> {
  const archiver = options.archiver ?? tarArchiver;
  const stage = path.join(options.work, 'image');
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  const layerTmp = path.join(stage, 'layer.tar');
  await tar(
    [
      '-C',
      options.rootDir,
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=*',
      '-cf',
      layerTmp,
      '.',
    ],
    archiver,
  );
  const diffId = await sha256File(layerTmp);
  await mkdir(path.join(stage, diffId));
  await rename(layerTmp, path.join(stage, diffId, 'layer.tar'));
  const configJson = imageConfigJson(diffId, options.config, options.createdBy);
  const imageId = sha256(configJson);
  await writeFile(path.join(stage, `${imageId}.json`), configJson);
  await writeFile(
    path.join(stage, 'manifest.json'),
    JSON.stringify([
      { Config: `${imageId}.json`, RepoTags: [options.repoTag], Layers: [`${diffId}/layer.tar`] },
    ]),
  );
  const [repo, tag] = options.repoTag.split(/:(?=[^:]+$)/);
  await writeFile(
    path.join(stage, 'repositories'),
    JSON.stringify({ [repo ?? options.repoTag]: { [tag ?? 'latest']: diffId } }),
  );
  await tar(
    [
      '-C',
      stage,
      options.gzip ? '-czf' : '-cf',
      `${options.out}.partial`,
      'manifest.json',
      'repositories',
      `${imageId}.json`,
      `${diffId}/layer.tar`,
    ],
    archiver,
  );
  await rename(`${options.out}.partial`, options.out);
  await rm(stage, { recursive: true, force: true });
  return { imageId };
}
