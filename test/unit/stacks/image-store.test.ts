/** The image store's pure half: recipe arguments, cache key, and what the recipe prints. */
import { describe, expect, it } from 'vitest';
import {
  dockerdVersion,
  imageStoreArgs,
  imageStoreFile,
  parseImageStoreLine,
  type StoreImage,
} from '../../../src/stacks/image-store.js';
import { installProfile } from '../../../src/stacks/install.js';

const profile = installProfile('debian');
const inputs: StoreImage[] = [
  { image: profile.pauseImage, file: '/c/pause-klab.tar', size: 10, mtimeMs: 1 },
  { image: profile.ingressImage, file: '/c/traefik.tar.gz', size: 20, mtimeMs: 2 },
];

describe('the image store (pure)', () => {
  it('loads docker-archives and imports lone programs with their entrypoint', () => {
    expect(imageStoreArgs(inputs)).toEqual([
      '--load',
      '/c/pause-klab.tar',
      '--import',
      '/c/traefik.tar.gz',
      'klab/traefik:v2.11.10',
      '/traefik/traefik',
    ]);
  });

  it('is kept under a key that changes with an artifact, the host Docker or the recipe', () => {
    const file = imageStoreFile(inputs, '20.10.24+dfsg1', 'recipe', '/cache');
    expect(file).toMatch(/^\/cache\/[0-9a-f]{24}\/store\.tar\.gz$/);
    expect(imageStoreFile(inputs, '20.10.24+dfsg1', 'recipe', '/cache')).toBe(file);
    const rebuilt = inputs.map((input, i) => (i === 1 ? { ...input, mtimeMs: 3 } : input));
    for (const other of [
      imageStoreFile(rebuilt, '20.10.24+dfsg1', 'recipe', '/cache'),
      imageStoreFile(inputs, '24.0.5', 'recipe', '/cache'),
      imageStoreFile(inputs, '20.10.24+dfsg1', 'recipe changed', '/cache'),
      imageStoreFile(inputs.slice(0, 1), '20.10.24+dfsg1', 'recipe', '/cache'),
    ]) {
      expect(other).not.toBe(file);
    }
  });

  it("reads dockerd's version and the recipe's last line", () => {
    expect(dockerdVersion('Docker version 20.10.24+dfsg1, build 297e128\n')).toBe('20.10.24+dfsg1');
    expect(dockerdVersion('bash: dockerd: command not found')).toBeUndefined();
    expect(parseImageStoreLine('klab-image-store: 20.10.24+dfsg1 overlay2')).toEqual({
      dockerVersion: '20.10.24+dfsg1',
      driver: 'overlay2',
    });
    expect(parseImageStoreLine('klab-progress: packing the store')).toBeUndefined();
  });
});
