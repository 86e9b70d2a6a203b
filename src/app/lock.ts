/**
 * One writer per lab: commands that change a lab hold `.klab/lock` while they run. A
 * second one refuses at once (KLAB_LOCKED, naming the holder's command and PID) instead
 * of two runs snapshotting, reverting or provisioning the same VMs at the same time. A
 * lock left by a process that no longer runs (SIGKILL, a crash, a reboot) is taken over.
 */
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { KlabError } from '../model/errors.js';
import type { EventSink } from '../model/events.js';

export interface LockHolder {
  pid: number;
  command: string;
  host: string;
  startedAt: string;
}

export interface LabLock {
  readonly file: string;
  release(): void;
}

/** Whether a process with this PID runs on this machine (EPERM: it runs, as someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.command !== 'string') return undefined;
    return {
      pid: parsed.pid,
      command: parsed.command,
      host: parsed.host ?? '',
      startedAt: parsed.startedAt ?? '',
    };
  } catch {
    return undefined;
  }
}

/** The run changing the lab now (its lock, held by a live process), if any. */
export function labLockHolder(klabDir: string): LockHolder | undefined {
  const holder = readHolder(path.join(klabDir, 'lock'));
  return holder && (holder.host !== hostname() || processAlive(holder.pid)) ? holder : undefined;
}

export interface LockOptions {
  pid?: number;
  isAlive?: (pid: number) => boolean;
}

/** Takes the lab's lock for `command` ("klab create"), or throws KLAB_LOCKED. */
export function acquireLabLock(
  klabDir: string,
  command: string,
  sink: EventSink,
  options: LockOptions = {},
): LabLock {
  const file = path.join(klabDir, 'lock');
  const pid = options.pid ?? process.pid;
  const isAlive = options.isAlive ?? processAlive;
  mkdirSync(klabDir, { recursive: true });
  const me: LockHolder = { pid, command, host: hostname(), startedAt: new Date().toISOString() };
  // Written whole to a file of our own, then hard-linked into place: link() fails when
  // the lock exists, so taking it is atomic and nobody ever reads a half-written lock.
  const mine = `${file}.${pid}`;
  writeFileSync(mine, `${JSON.stringify(me)}\n`, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        linkSync(mine, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = readHolder(file);
        if (holder && holder.host !== me.host) {
          // A lab directory shared between machines: a PID from elsewhere cannot be checked.
          throw new KlabError(
            'KLAB_LOCKED',
            `the lab is busy: "${holder.command}" (PID ${holder.pid} on ${holder.host}, since ${holder.startedAt}) is changing it`,
            {
              hint: `klab cannot tell from here whether that run still goes on. If it does not, delete ${file} and run your command again.`,
            },
          );
        }
        if (holder && isAlive(holder.pid)) {
          throw new KlabError(
            'KLAB_LOCKED',
            `the lab is busy: "${holder.command}" (PID ${holder.pid}, since ${holder.startedAt}) is changing it`,
            {
              hint: `Wait for it to finish, or stop it (Ctrl-C, or kill ${holder.pid}) and run your command again. Reading commands (status, verify, snapshot list) work meanwhile.`,
            },
          );
        }
        // Known gap: two runs that find the same dead lock at the same instant can both
        // remove it, and the later link() then wins over a lock just taken. Rare enough
        // (both must start within milliseconds after a crash) to leave.
        sink.emit({
          kind: 'notice',
          code: 'LOCK_TAKEN_OVER',
          level: 'warn',
          text: holder
            ? `Took over the lab's lock from "${holder.command}" (PID ${holder.pid}), which no longer runs.`
            : 'Took over an unreadable lab lock.',
        });
        rmSync(file, { force: true });
        continue;
      }
      return {
        file,
        release() {
          // Only remove our own lock (after a takeover it may be someone else's).
          if (readHolder(file)?.pid === pid) rmSync(file, { force: true });
        },
      };
    }
  } finally {
    rmSync(mine, { force: true });
  }
  throw new KlabError('KLAB_LOCKED', `could not take the lab's lock (${file})`, {
    hint: 'Another klab command is starting on this lab at the same moment; run yours again.',
  });
}
