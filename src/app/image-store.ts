/**
 * The host half of preloading the lab's images (provision/images has the VM half): a
 * Docker image store made once by a private dockerd of the host's Docker, when the host
 * can make one (klab runs as root, dockerd is installed, its version is the VMs'), kept in
 * the cache by its inputs. When it cannot, the reason is said once and every VM loads the
 * images itself, as before: nothing depends on the store but speed.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type ProcessOptions, runProcess } from '../adapters/process.js';
import { cachePath } from '../model/cache-paths.js';
import { tail } from '../model/errors.js';
import { type EventSink, notice, scriptLines, task } from '../model/events.js';
import { packagePath } from '../model/package-root.js';
import type { ProcessResult } from '../model/ports.js';
import {
  dockerdVersion,
  type ImageStore,
  imageStoreArgs,
  imageStoreFile,
  parseImageStoreLine,
  type StoreImage,
} from '../stacks/image-store.js';
import type { ImageInstall } from '../stacks/install.js';
import { cachedBuild } from '../stacks/subset.js';

/** What the store needs of the host; unit tests pass fakes. */
export interface StoreHost {
  isRoot(): boolean;
  run(argv: readonly string[], options?: ProcessOptions): Promise<ProcessResult>;
  /** Where stores are kept (the cache). */
  root: string;
}

const realHost: StoreHost = {
  isRoot: () => process.getuid?.() === 0,
  run: runProcess,
  root: cachePath('image-stores'),
};

const RECIPE = () => packagePath('builders', 'image-store.sh');

/**
 * StepContext.imageStore for a lab: `artifactFile` finds each image's artifact. Reasons
 * for not making a store are said once per command.
 */
export function hostImageStore(
  artifactFile: (id: string) => string,
  sink: EventSink,
  host: StoreHost = realHost,
): (images: readonly ImageInstall[], guestDocker: string) => Promise<ImageStore | undefined> {
  const said = new Set<string>();
  const skip = (reason: string): undefined => {
    if (!said.has(reason)) {
      said.add(reason);
      notice(
        sink,
        'IMAGE_STORE_UNUSED',
        `images: each VM loads them itself (slower than unpacking a store made on the host): ${reason}`,
        'info',
      );
    }
    return undefined;
  };
  let hostDocker: Promise<string | undefined> | undefined;
  return async (images, guestDocker) => {
    if (!host.isRoot()) return skip('klab is not running as root (a private dockerd needs it)');
    hostDocker ??= host
      .run(['dockerd', '--version'])
      .then((result) => (result.exitCode === 0 ? dockerdVersion(result.stdout) : undefined));
    const version = await hostDocker;
    if (!version) return skip('no dockerd on this host (Debian: apt-get install docker.io)');
    if (version !== guestDocker) {
      return skip(`the host's Docker is ${version}, the VMs' ${guestDocker}`);
    }
    try {
      return await makeStore(images, version, artifactFile, sink, host);
    } catch (error) {
      return skip(`making it failed: ${(error as Error).message}`);
    }
  };
}

async function makeStore(
  images: readonly ImageInstall[],
  hostDocker: string,
  artifactFile: (id: string) => string,
  sink: EventSink,
  host: StoreHost,
): Promise<ImageStore> {
  const inputs: StoreImage[] = await Promise.all(
    images.map(async (image) => {
      const file = artifactFile(image.artifact);
      const info = await stat(file);
      return { image, file, size: info.size, mtimeMs: info.mtimeMs };
    }),
  );
  const recipe = await readFile(RECIPE(), 'utf8');
  const zstd = await host.run(['zstd', '--version']).catch(() => undefined);
  const compression = zstd?.exitCode === 0 ? 'zstd' : 'gzip';
  const out = imageStoreFile(inputs, hostDocker, recipe, host.root, compression);
  const meta = `${out}.json`;
  await cachedBuild(out, (work) =>
    task(
      sink,
      `Docker image store for the VMs, made on the host (${images.length} images)`,
      async (update) => {
        let made: { dockerVersion: string; driver: string } | undefined;
        const lines = scriptLines(sink, 'image-store', update);
        // The recipe compresses as the name says (zstd for .tar.zst).
        const packed = path.join(work, path.basename(out));
        const result = await host.run(
          ['bash', RECIPE(), '--work', work, '--out', packed, ...imageStoreArgs(inputs)],
          {
            timeoutMs: 10 * 60_000,
            onLine: (line) => {
              made = parseImageStoreLine(line) ?? made;
              lines(line);
            },
          },
        );
        if (result.exitCode !== 0 || !made) {
          throw new Error(
            `builders/image-store.sh exited ${result.exitCode}: ${tail(result.stderr || result.stdout, 400)}`,
          );
        }
        const store: Omit<ImageStore, 'file'> = {
          ...made,
          images: images.map((image) => image.image),
        };
        await writeFile(meta, `${JSON.stringify(store)}\n`);
        await rename(packed, out);
      },
      { describe: () => path.basename(path.dirname(out)) },
    ),
  );
  const store = JSON.parse(await readFile(meta, 'utf8')) as Omit<ImageStore, 'file'>;
  return { ...store, file: out };
}
