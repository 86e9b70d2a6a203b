import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Reporter } from '../../../src/ui/reporter.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d) => {
    text += d;
  });
  return { stream, text: () => text };
}

async function run(options: { verbose?: boolean; quiet?: boolean; json?: boolean }) {
  const out = capture();
  const err = capture();
  const reporter = new Reporter({
    tty: false,
    verbose: false,
    quiet: false,
    ...options,
    stdout: out.stream,
    stderr: err.stream,
  });
  const log = path.join(await mkdtemp(path.join(os.tmpdir(), 'klab-log-')), 'run.log');
  reporter.emit({ kind: 'task-start', code: 'TASK_STARTED', id: 't1', title: 'Boot master' });
  reporter.setLogFile(log); // lines emitted before the log existed are kept
  reporter.emit({
    kind: 'output',
    code: 'OUTPUT',
    source: 'master',
    line: 'Started OpenBSD Secure Shell server.',
  });
  reporter.emit({ kind: 'task-update', code: 'TASK_PROGRESS', id: 't1', text: 'waiting for SSH' });
  reporter.emit({
    kind: 'task-end',
    code: 'TASK_DONE',
    id: 't1',
    title: 'Boot master',
    ok: true,
    ms: 61_900,
    detail: 'TCG',
  });
  reporter.emit({
    kind: 'notice',
    code: 'FALLBACK_HYPERVISOR',
    level: 'warn',
    text: 'KVM cannot boot guests here',
  });
  reporter.emit({
    kind: 'task-end',
    code: 'STEP_FAILED',
    subject: 'default-route',
    id: 't2',
    title: 'Default route',
    ok: false,
    ms: 300,
  });
  reporter.emit({
    kind: 'result',
    code: 'LAB_READY',
    text: 'Lab "x" is ready',
    data: { kind: 'Ready', vms: ['master'] },
  });
  reporter.close();
  reporter.writeJson('create');
  return { stdout: out.text(), stderr: err.text(), log: await readFile(log, 'utf8') };
}

describe('Reporter without a terminal (CI, pipes)', () => {
  it('prints plain - / ok / FAIL lines on stderr and the result on stdout', async () => {
    const { stdout, stderr } = await run({});
    expect(stdout).toBe('Lab "x" is ready\n');
    expect(stderr.split('\n')).toEqual([
      ' - Boot master',
      '   Boot master: waiting for SSH',
      'ok Boot master (61.9 s, TCG)',
      '! KVM cannot boot guests here',
      'FAIL Default route (300 ms)',
      '',
    ]);
  });

  it('streams VM output prefixed with the VM only with --verbose', async () => {
    expect((await run({})).stderr).not.toContain('[master]');
    expect((await run({ verbose: true })).stderr).toContain(
      '[master] Started OpenBSD Secure Shell server.',
    );
  });

  it('keeps only warnings, failures and results with --quiet', async () => {
    const { stderr } = await run({ quiet: true });
    expect(stderr).toBe('! KVM cannot boot guests here\nFAIL Default route (300 ms)\n');
  });

  it('writes everything, VM output included, to the log file', async () => {
    const { log } = await run({});
    for (const part of [
      'start Boot master',
      '[master] Started OpenBSD',
      'ok Boot master (61900 ms) TCG',
      'WARN KVM',
      'FAIL Default route',
      'result Lab',
    ]) {
      expect(log).toContain(part);
    }
  });
});

describe('Reporter with --json', () => {
  it('prints one JSON document: the answer, its code and data, and every event that ended', async () => {
    const { stdout, stderr } = await run({ json: true });
    const doc = JSON.parse(stdout);
    expect(doc).toMatchObject({
      apiVersion: 'klab/v1',
      kind: 'Ready',
      command: 'create',
      ok: true,
      code: 'LAB_READY',
      vms: ['master'],
    });
    expect(doc.events.map((e: { code: string }) => e.code)).toEqual([
      'TASK_DONE',
      'FALLBACK_HYPERVISOR',
      'STEP_FAILED',
    ]);
    expect(doc.events[2]).toMatchObject({ subject: 'default-route', ok: false });
    // People still see the progress, on stderr.
    expect(stderr).toContain('ok Boot master');
  });
});

describe('Reporter --json and exit codes', () => {
  it('a command that answers but exits non-zero (doctor with problems) is not ok', () => {
    const out = capture();
    const reporter = new Reporter({
      tty: false,
      verbose: false,
      quiet: false,
      json: true,
      stdout: out.stream,
      stderr: capture().stream,
    });
    reporter.emit({
      kind: 'result',
      code: 'DOCTOR_REPORT',
      text: '1 problem(s)',
      data: { kind: 'DoctorReport', ready: false, findings: [] },
    });
    reporter.writeJson('doctor', undefined, 3);
    expect(JSON.parse(out.text())).toMatchObject({ kind: 'DoctorReport', ok: false, ready: false });
  });
});

describe('scriptLines', () => {
  it('turns klab-progress lines into task updates and the rest into OUTPUT events', async () => {
    const { scriptLines } = await import('../../../src/model/events.js');
    const events: unknown[] = [];
    const updates: string[] = [];
    const onLine = scriptLines({ emit: (e) => events.push(e) }, 'box', (t) => updates.push(t));
    onLine('klab-progress: debootstrap 40%');
    onLine('I: Retrieving Release');
    expect(updates).toEqual(['debootstrap 40%']);
    expect(events).toEqual([
      { kind: 'output', code: 'OUTPUT', source: 'box', line: 'I: Retrieving Release' },
    ]);
  });
});
