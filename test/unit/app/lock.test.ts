import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os, { hostname } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { acquireLabLock, processAlive } from '../../../src/app/lock.js';
import { main } from '../../../src/main.js';
import { KlabError } from '../../../src/model/errors.js';
import type { KlabEvent } from '../../../src/model/events.js';

async function labDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-lock-'));
  await mkdir(path.join(dir, '.klab'));
  return dir;
}

function recorder() {
  const events: KlabEvent[] = [];
  return { events, sink: { emit: (event: KlabEvent) => events.push(event) } };
}

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await main(argv, { stdout, stderr, stdin: new PassThrough(), isTty: false });
  return { code, err };
}

describe('the lab lock', () => {
  it('refuses a second writer at once, naming the command and PID that hold it', async () => {
    const dir = await labDir();
    const { sink } = recorder();
    const first = acquireLabLock(path.join(dir, '.klab'), 'klab create', sink, {
      pid: 4242,
      isAlive: () => true,
    });
    let failure: unknown;
    try {
      acquireLabLock(path.join(dir, '.klab'), 'klab reset', sink, {
        pid: 4343,
        isAlive: () => true,
      });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(KlabError);
    const klab = failure as KlabError;
    expect(klab.code).toBe('KLAB_LOCKED');
    expect(klab.exitCode).toBe(4);
    expect(klab.message).toMatch(
      /^the lab is busy: "klab create" \(PID 4242, since .+\) is changing it$/,
    );
    first.release();
    expect(existsSync(path.join(dir, '.klab', 'lock'))).toBe(false);
    // Free again: the next writer gets it.
    acquireLabLock(path.join(dir, '.klab'), 'klab reset', sink, { pid: 4343 }).release();
  });

  it('takes over a lock whose process no longer runs, with a notice', async () => {
    const dir = await labDir();
    await writeFile(
      path.join(dir, '.klab', 'lock'),
      JSON.stringify({ pid: 999_999, command: 'klab create', host: hostname(), startedAt: 'then' }),
    );
    const { events, sink } = recorder();
    const lock = acquireLabLock(path.join(dir, '.klab'), 'klab create', sink, {
      pid: 5151,
      isAlive: () => false,
    });
    expect(events).toContainEqual({
      kind: 'notice',
      code: 'LOCK_TAKEN_OVER',
      level: 'warn',
      text: 'Took over the lab\'s lock from "klab create" (PID 999999), which no longer runs.',
    });
    const holder = JSON.parse(await readFile(lock.file, 'utf8')) as { pid: number };
    expect(holder.pid).toBe(5151);
    lock.release();
  });

  it('never takes over a lock held on another machine (a shared lab directory)', async () => {
    const dir = await labDir();
    await writeFile(
      path.join(dir, '.klab', 'lock'),
      JSON.stringify({ pid: 999_999, command: 'klab reset', host: 'elsewhere', startedAt: 'then' }),
    );
    const { sink } = recorder();
    expect(() =>
      acquireLabLock(path.join(dir, '.klab'), 'klab create', sink, { isAlive: () => false }),
    ).toThrow(/"klab reset" \(PID 999999 on elsewhere, since then\) is changing it/);
  });

  it('release leaves a lock that is no longer ours alone', async () => {
    const dir = await labDir();
    const { sink } = recorder();
    const lock = acquireLabLock(path.join(dir, '.klab'), 'klab up', sink, { pid: 6161 });
    await writeFile(
      lock.file,
      JSON.stringify({ pid: 7171, command: 'klab halt', host: hostname() }),
    );
    lock.release();
    expect(existsSync(lock.file)).toBe(true);
  });

  it('knows a live process from a dead one', async () => {
    expect(processAlive(process.pid)).toBe(true);
    const child = execa('true');
    await child;
    expect(processAlive(child.pid ?? 0)).toBe(false);
    expect(processAlive(0)).toBe(false);
  });
});

describe('one writer per lab, between real processes', () => {
  it('a writing command refuses with exit 4 while another process holds the lab; reading commands do not', async () => {
    const dir = await labDir();
    // Another klab process, as far as the lock can tell: a live process on this host.
    const other = execa('sleep', ['60']);
    try {
      await writeFile(
        path.join(dir, '.klab', 'lock'),
        JSON.stringify({
          pid: other.pid,
          command: 'klab create',
          host: hostname(),
          startedAt: 'now',
        }),
      );
      const started = Date.now();
      const halted = await run(['--dir', dir, 'halt']);
      expect(halted.code).toBe(4);
      expect(halted.err).toContain(
        `error[KLAB_LOCKED]: the lab is busy: "klab create" (PID ${other.pid}`,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      // verify does not need the lock: it fails for its own reason (no lab here).
      const verified = await run(['--dir', dir, 'verify']);
      expect(verified.err).not.toContain('KLAB_LOCKED');
      expect(verified.err).toContain('KLAB_NO_LAB');
    } finally {
      other.kill();
      await other.catch(() => undefined);
    }
    // The holder is gone: the next writer takes the lock over and runs.
    const after = await run(['--dir', dir, 'halt']);
    expect(after.err).toContain('Took over the lab\'s lock from "klab create"');
    expect(after.err).toContain('KLAB_NO_LAB');
    expect(existsSync(path.join(dir, '.klab', 'lock'))).toBe(false);
  });
});
