/** The one tar wrapper (the Archiver port): offline bundles and image archives. */
import { KlabError, tail } from '../model/errors.js';
import type { Archiver } from '../model/ports.js';
import { runProcess } from './process.js';

let zstd: Promise<boolean> | undefined;

export const tarArchiver: Archiver = {
  hasZstd() {
    zstd ??= runProcess(['zstd', '--version'], { timeoutMs: 30_000 }).then(
      (result) => result.exitCode === 0 && !result.timedOut,
      () => false,
    );
    return zstd;
  },
  async tar(args, failure, timeoutMs = 60 * 60_000) {
    const result = await runProcess(['tar', ...args], { timeoutMs });
    if (result.exitCode !== 0 || result.timedOut) {
      throw new KlabError(failure.code, `tar ${args[0] ?? ''} failed ${failure.what}`, {
        command: ['tar', ...args],
        outputTail: tail(result.stderr) || (result.timedOut ? 'timed out' : undefined),
        ...(failure.hint ? { hint: failure.hint } : {}),
      });
    }
  },
};
