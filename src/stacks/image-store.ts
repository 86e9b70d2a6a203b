/**
 * A Docker image store holding a stack's images, made once on the host by a private
 * dockerd (builders/image-store.sh) and kept in the cache: a VM whose Docker is the same
 * version and has no image yet unpacks it into /var/lib/docker instead of loading each
 * image itself (provision/images). The pure half: the recipe's arguments, the cache file
 * and what the recipe prints.
 */
import path from 'node:path';
import { sha256 } from '../model/hash.js';
import type { ImageInstall } from './install.js';

/** A store in the cache and what made it. */
export interface ImageStore {
  /** image/overlay2 and overlay2 of a Docker data root, as a .tar.zst or .tar.gz. */
  file: string;
  /** The version of the dockerd that made it (`docker version` .Server.Version). */
  dockerVersion: string;
  /** Its storage driver (overlay2). */
  driver: string;
  /** The image names in it. */
  images: string[];
}

/** One image for the recipe, with the file it comes from. */
export interface StoreImage {
  image: ImageInstall;
  file: string;
  /** Size and mtime of the file: the cache key changes when the artifact is rebuilt. */
  size: number;
  mtimeMs: number;
}

/** The recipe's image arguments: --load ARCHIVE, or --import ARCHIVE NAME ENTRYPOINT. */
export function imageStoreArgs(images: readonly StoreImage[]): string[] {
  return images.flatMap(({ image, file }) =>
    image.from === 'docker-archive'
      ? ['--load', file]
      : ['--import', file, image.image, image.from.entrypoint],
  );
}

/**
 * The cache file of a store of these images made by this dockerd with this recipe (pure);
 * zstd-compressed where the host has zstd (several times faster to unpack on a VM under
 * software emulation), gzip otherwise: the name says which.
 */
export function imageStoreFile(
  images: readonly StoreImage[],
  hostDocker: string,
  recipe: string,
  root: string,
  compression: 'zstd' | 'gzip' = 'gzip',
): string {
  const key = sha256(
    JSON.stringify({
      images: images.map(({ image, file, size, mtimeMs }) => ({
        image: image.image,
        from: image.from,
        file: path.basename(file),
        size,
        mtimeMs,
      })),
      hostDocker,
      recipe: sha256(recipe),
    }),
  ).slice(0, 24);
  return path.join(root, key, compression === 'zstd' ? 'store.tar.zst' : 'store.tar.gz');
}

/** "Docker version 20.10.24+dfsg1, build 297e128" -> "20.10.24+dfsg1" (undefined if not that). */
export function dockerdVersion(versionOutput: string): string | undefined {
  return /^Docker version (\S+?),/m.exec(versionOutput)?.[1];
}

/** The recipe's last line, "klab-image-store: VERSION DRIVER". */
export function parseImageStoreLine(
  line: string,
): { dockerVersion: string; driver: string } | undefined {
  const match = /^klab-image-store: (\S+) (\S+)$/.exec(line.trim());
  return match?.[1] && match[2] ? { dockerVersion: match[1], driver: match[2] } : undefined;
}
