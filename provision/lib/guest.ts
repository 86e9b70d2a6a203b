/**
 * What the cluster steps do on a VM, in one place: put managed files (only those that
 * differ), start systemd units, and wait for something with a named timeout.
 */
import { KlabError } from '../../src/model/errors.js';
import { sha256 } from '../../src/model/hash.js';
import { interrupt } from '../../src/model/interrupt.js';
import type { RemoteHost, RootFile } from '../../src/model/remote.js';
import type { StepContext } from './step.js';

/** A file klab keeps on a VM, root-owned unless it names an owner. */
export type ManagedFile = RootFile;

/** SHA-256 of each path on the VM; missing files are absent from the map. */
export async function remoteHashes(
  host: RemoteHost,
  paths: readonly string[],
): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  if (paths.length === 0) return hashes;
  const result = await host.run(['sha256sum', '--', ...paths], {
    sudo: true,
    allowFailure: true,
  });
  for (const line of result.stdout.split('\n')) {
    const match = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line.trim());
    if (match?.[1] && match[2]) hashes.set(match[2], match[1]);
  }
  return hashes;
}

/** The files that are missing or differ on the VM. */
export async function changedFiles(
  host: RemoteHost,
  files: readonly ManagedFile[],
): Promise<ManagedFile[]> {
  const hashes = await remoteHashes(
    host,
    files.map((file) => file.path),
  );
  return files.filter((file) => hashes.get(file.path) !== sha256(file.content));
}

/** Writes the files that differ (creating their directories); returns what it wrote. */
export async function putFiles(host: RemoteHost, files: readonly ManagedFile[]): Promise<string[]> {
  const changed = await changedFiles(host, files);
  await host.writeFilesAsRoot(changed);
  return changed.map((file) => file.path);
}

export async function unitsActive(host: RemoteHost, units: readonly string[]): Promise<boolean> {
  if (units.length === 0) return true;
  const result = await host.run(['systemctl', 'is-active', ...units], { allowFailure: true });
  return result.exitCode === 0;
}

/** daemon-reload, enable, and (re)start the units: restart when their files changed. */
export async function startUnits(
  host: RemoteHost,
  units: readonly string[],
  restart: boolean,
): Promise<void> {
  await host.run(['systemctl', 'daemon-reload'], { sudo: true });
  await host.run(['systemctl', 'enable', ...units], { sudo: true });
  await host.run(['systemctl', restart ? 'restart' : 'start', ...units], {
    sudo: true,
    // Type=notify units (etcd, flanneld) return only once they are ready.
    timeoutMs: 5 * 60_000,
  });
}

/** Whether a program is on the VM's PATH (zstd: how archives can travel to it). */
export async function hasProgram(host: RemoteHost, program: string): Promise<boolean> {
  const found = await host.run(['sh', '-c', 'command -v "$1"', 'sh', program], {
    allowFailure: true,
  });
  return found.exitCode === 0;
}

/** The tail of a unit's journal, for error messages. */
export async function journalTail(host: RemoteHost, unit: string, lines = 15): Promise<string> {
  const result = await host.run(
    ['journalctl', '-u', unit, '-n', String(lines), '--no-pager', '-o', 'cat'],
    { sudo: true, allowFailure: true },
  );
  return result.stdout.trim();
}

export interface WaitOptions {
  /** What is awaited, for the progress line and the timeout error ("node1 Ready"). */
  what: string;
  vm: string;
  timeoutMs: number;
  /** The first pause between probes (3 s); it grows by half each time up to maxIntervalMs. */
  intervalMs?: number;
  /** The longest pause between probes (10 s). */
  maxIntervalMs?: number;
  hint: string;
  /** Extra output for the error, e.g. a journal tail. */
  diagnose?: () => Promise<string>;
}

/**
 * Polls `probe` until it returns true; throws KLAB_TIMEOUT naming what never happened.
 * The pause between probes grows (3 s, 4.5 s, ... up to 10 s): each probe is an SSH
 * command and often a kubectl on the master, and on a starved host a long wait that
 * probes every 3 s is itself part of the load it waits out. It never sleeps past the
 * deadline, so the last probe comes at the deadline.
 * `probe` may return a string: the latest reason, shown in the error. Returns how long
 * it waited (ms), so callers can tell a slow lab from a quick one.
 */
export async function waitFor(
  ctx: Pick<StepContext, 'clock'>,
  options: WaitOptions,
  probe: () => Promise<true | string>,
): Promise<number> {
  const started = ctx.clock.now();
  const deadline = started + options.timeoutMs;
  let last = 'not yet';
  const maxPause = options.maxIntervalMs ?? 10_000;
  let pause = Math.min(options.intervalMs ?? 3000, maxPause);
  for (let attempt = 1; ; attempt += 1) {
    const answer = await probe().catch((error: unknown) => (error as Error).message);
    // Right the first time is no wait at all, however slow the probe itself was.
    if (answer === true) return attempt === 1 ? 0 : ctx.clock.now() - started;
    last = answer;
    if (ctx.clock.now() >= deadline) break;
    interrupt.throwIfRequested(
      `Stopped while waiting for ${options.what}; run the command again to go on.`,
    );
    await ctx.clock.sleep(Math.max(0, Math.min(pause, deadline - ctx.clock.now())));
    pause = Math.min(pause * 1.5, maxPause);
  }
  const diagnosis = options.diagnose ? await options.diagnose().catch(() => '') : '';
  throw new KlabError(
    'KLAB_TIMEOUT',
    `${options.what}: not reached within ${Math.round(options.timeoutMs / 1000)} s (${last})`,
    { vm: options.vm, hint: options.hint, outputTail: diagnosis || undefined },
  );
}
