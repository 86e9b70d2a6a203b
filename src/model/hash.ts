/** SHA-256, the one hash klab uses: file contents, cache keys, digests. Hex, lower case. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** The hash of some content, or of several parts in order (a cache key over its inputs). */
export function sha256(...parts: readonly (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** The hash of a file, streamed (artifacts are hundreds of MB). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
