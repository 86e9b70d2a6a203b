import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/main.js';

async function run(argv: string[], signals?: NodeJS.EventEmitter) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d;
  });
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await main(argv, {
    stdout,
    stderr,
    stdin: new PassThrough(),
    isTty: false,
    ...(signals ? { signals } : {}),
  });
  return { code, out, err };
}

describe('main', () => {
  it('reports every problem of a broken klab.yaml with exit code 2 and touches nothing', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    await writeFile(
      path.join(dir, 'klab.yaml'),
      'nodes:\n  - {name: master, role: master}\n  - {name: node1}\n  - {name: node2, memory: 512}\nfoo: 1\n',
    );
    const { code, err } = await run(['--dir', dir, 'create']);
    expect(code).toBe(2);
    expect(err).toContain('error[KLAB_SPEC_INVALID]');
    expect(err).toContain('  nodes[2].memory: must be >= 1024');
    expect(err).toContain('  foo: unknown setting');
    expect(err).toMatch(/hint: Fix .*klab.yaml; nothing was changed/);
    expect(existsSync(path.join(dir, 'Vagrantfile'))).toBe(false);
    // The run's log is written and named in the error.
    const logs = await readdir(path.join(dir, '.klab', 'logs'));
    expect(logs.some((name) => name.endsWith('-create.log'))).toBe(true);
    expect(err).toMatch(/full log: .*-create\.log/);
  });

  it('rejects unknown commands and options as usage errors (exit 2)', async () => {
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('error[KLAB_USAGE]');
    const badOption = await run(['status', '--colour']);
    expect(badOption.code).toBe(2);
    expect(badOption.err).toContain('Unknown argument: colour');
  });

  it('names a mistyped command and the closest one', async () => {
    const typo = await run(['--dir', '/tmp', 'crate']);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('error[KLAB_USAGE]: unknown command "crate"');
    expect(typo.err).toContain('hint: Did you mean "klab create"?');
    const far = await run(['frobnicate']);
    expect(far.err).toContain('unknown command "frobnicate"');
    expect(far.err).not.toContain('Did you mean');
  });

  it('reset and snapshot list on a lab that was never created say so, without asking libvirt', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    for (const argv of [
      ['reset', 'base'],
      ['snapshot', 'list'],
    ]) {
      const { code, err } = await run(['--dir', dir, ...argv]);
      expect(code).toBe(2);
      expect(err).toContain(`error[KLAB_NO_LAB]: no lab in ${dir}`);
    }
  });

  it('Ctrl-C lets the action under way finish (a vagrant call is not cut) and says what happens', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    await writeFile(path.join(dir, 'Vagrantfile'), '# fake lab\n');
    const bin = await mkdtemp(path.join(os.tmpdir(), 'klab-bin-'));
    const marker = path.join(dir, 'halt-finished');
    // A fake vagrant: takes a moment, then records that it ran to the end.
    await writeFile(path.join(bin, 'vagrant'), `#!/bin/sh\nsleep 1\necho done > '${marker}'\n`, {
      mode: 0o755,
    });
    const signals = new EventEmitter();
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const running = run(['--dir', dir, 'halt'], signals);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(signals.listenerCount('SIGINT')).toBe(1);
      signals.emit('SIGINT', 'SIGINT');
      const { code, err } = await running;
      expect(err).toContain('SIGINT: stopping at the next safe point, leaving the lab resumable');
      expect(code).toBe(0);
      expect(existsSync(marker)).toBe(true);
    } finally {
      process.env.PATH = savedPath;
    }
    expect(signals.listenerCount('SIGINT')).toBe(0);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    expect(existsSync(path.join(dir, '.klab', 'lock'))).toBe(false);
  });

  it('Ctrl-C of klab ui says it stops the page, not that the lab is left resumable', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    const signals = new EventEmitter();
    const running = run(['--dir', dir, 'ui', '--port', '0'], signals);
    const deadline = Date.now() + 20_000;
    while (signals.listenerCount('SIGINT') === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Listening takes a moment after the handler is in place.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    signals.emit('SIGINT', 'SIGINT');
    const { code, err } = await running;
    expect(code).toBe(0);
    expect(err).toContain('SIGINT: stopping klab ui');
    expect(err).not.toContain('leaving the lab resumable');
    expect(err).toContain('klab ui stopped');
  });

  it('a klab.yaml that is a directory is a clear input error (exit 2), not a crash', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    await mkdir(path.join(dir, 'klab.yaml'));
    const { code, err } = await run(['--dir', dir, 'status']);
    expect(code).toBe(2);
    expect(err).toContain('error[KLAB_SPEC_PARSE]');
    expect(err).toContain('klab.yaml is a directory, not a file');
    expect(err).not.toContain('KLAB_INTERNAL');
    expect(err).not.toMatch(/\n\s+at /);
  });

  it('status --json in an empty directory lists the VMs of the default lab as not created', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    const { code, out } = await run(['--dir', dir, 'status', '--json']);
    expect(code).toBe(0);
    const doc = JSON.parse(out);
    expect(doc).toMatchObject({
      apiVersion: 'klab/v1',
      kind: 'Status',
      ok: true,
      code: 'LAB_STATUS',
    });
    expect(doc.vms.map((vm: { name: string; state: string }) => `${vm.name} ${vm.state}`)).toEqual([
      'master not_created',
      'node1 not_created',
      'node2 not_created',
      'node3 not_created',
    ]);
  });

  it('a failed command with --json still prints one document, with the error and its exit code', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    for (const argv of [['verify'], ['snapshot', 'list']]) {
      const { code, out, err } = await run(['--dir', dir, ...argv, '--json']);
      expect(code).toBe(2);
      const doc = JSON.parse(out);
      expect(doc).toMatchObject({ ok: false, code: 'KLAB_NO_LAB', error: { code: 'KLAB_NO_LAB' } });
      expect(err).toContain('error[KLAB_NO_LAB]');
    }
  });

  it('certs list --json describes every certificate the plan names', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    expect((await run(['--dir', dir, 'certs', 'generate'])).code).toBe(0);
    const { code, out } = await run(['--dir', dir, 'certs', 'list', '--json']);
    expect(code).toBe(0);
    const doc = JSON.parse(out);
    expect(doc.kind).toBe('CertificateList');
    const ca = doc.items.find((item: { name: string }) => item.name === 'ca');
    expect(ca).toMatchObject({ state: 'ok', isCa: true });
    const apiserver = doc.items.find((item: { name: string }) => item.name === 'apiserver');
    expect(apiserver.sans).toContain('kubernetes.default.svc.cluster.local');
  });

  it('ssh into a lab that does not exist says so (exit 2)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-'));
    const ssh = await run(['--dir', dir, 'ssh', 'node1', '--', 'true']);
    expect(ssh.code).toBe(2);
    expect(ssh.err).toContain('error[KLAB_NO_LAB]');
  });

  it('klab lesson: list --json with progress, show in Chinese, start without an id is a usage error, an unknown lesson names the real ones', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-main-lesson-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'name: lessons\n');
    await writeFile(path.join(dir, 'Vagrantfile'), '# rendered\n');
    const list = await run(['--dir', dir, 'lesson', 'list', '--json']);
    expect(list.code).toBe(0);
    const doc = JSON.parse(list.out);
    expect(doc).toMatchObject({ kind: 'LessonList', code: 'LESSON_LIST', ok: true });
    expect(doc.items.map((item: { id: string }) => item.id)).toContain('etcd');
    const show = await run(['--dir', dir, 'lesson', 'show', 'etcd', '--lang', 'zh-CN']);
    expect(show.code).toBe(0);
    expect(show.out).toContain('etcd 集群');
    expect(show.out).toContain('klab ssh master');
    const noId = await run(['--dir', dir, 'lesson', 'start']);
    expect(noId.code).toBe(2);
    expect(noId.err).toContain('error[KLAB_USAGE]');
    const unknown = await run(['--dir', dir, 'lesson', 'hint', 'etdc']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('error[KLAB_LESSON_UNKNOWN]');
    expect(unknown.err).toContain('etcd');
  });

  it('prints help with every command', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    for (const command of [
      'init',
      'create',
      'status',
      'ssh',
      'halt',
      'up',
      'destroy',
      'doctor',
      'box',
    ]) {
      expect(out).toContain(`klab ${command}`);
    }
  });

  it('klab init writes a commented klab.yaml that validates back to the same lab', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-init-'));
    process.env.KLAB_HYPERVISOR = 'qemu';
    try {
      const { code } = await run(['init', dir]);
      expect(code).toBe(0);
    } finally {
      delete process.env.KLAB_HYPERVISOR;
    }
    const yaml = await readFile(path.join(dir, 'klab.yaml'), 'utf8');
    expect(yaml).toContain('# box: generic/ubuntu1804');
    const { parseSpecText } = await import('../../src/model/spec-file.js');
    const { validateSpec } = await import('../../src/model/spec-file.js');
    const name = path
      .basename(dir)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-');
    expect(parseSpecText(yaml, 'x', 'klab.yaml')).toEqual(
      validateSpec({ name }, 'x', 'the default lab'),
    );
    expect(yaml).toContain('  - name: node3');
    const vagrantfile = await readFile(path.join(dir, 'Vagrantfile'), 'utf8');
    expect(vagrantfile).toContain('config.vm.define "node3"');
    expect(vagrantfile).toContain('libvirt.driver = "qemu"');
  });
});
