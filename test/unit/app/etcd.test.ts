/** klab etcd backup / restore: the pieces that decide what runs on each member. */
import { describe, expect, it } from 'vitest';
import {
  backupName,
  parseSnapshotStatus,
  restoreArgs,
  restoreMembers,
} from '../../../src/app/etcd.js';
import { KlabError } from '../../../src/model/errors.js';
import { etcdMembers } from '../../../src/model/topology.js';
import { installProfile } from '../../../src/stacks/install.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { defaultSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

describe('etcd restore', () => {
  it('rebuilds each member with its own name and peer URL, the whole cluster and the lab token', () => {
    const spec = defaultSpec();
    const members = etcdMembers(spec);
    expect(members.map((m) => m.name)).toEqual(['master', 'node1', 'node2']);
    const cluster =
      '--initial-cluster=master=https://192.168.56.10:2380,node1=https://192.168.56.11:2380,node2=https://192.168.56.12:2380';
    expect(members.map((m) => restoreArgs(spec, m, '/var/tmp/s.db', '/var/lib/etcd/klab'))).toEqual(
      members.map((m) => [
        'snapshot',
        'restore',
        '/var/tmp/s.db',
        `--name=${m.name}`,
        cluster,
        '--initial-cluster-token=klab-klab',
        `--initial-advertise-peer-urls=https://${m.ip}:2380`,
        '--data-dir=/var/lib/etcd/klab',
      ]),
    );
  });

  it('reads snapshot status, and refuses what is not one', () => {
    expect(
      parseSnapshotStatus('{"hash":1234,"revision":5678,"totalKey":900,"totalSize":2101248}'),
    ).toEqual({ hash: 1234, revision: 5678, totalKey: 900, totalSize: 2101248 });
    expect(parseSnapshotStatus('')).toBeUndefined();
    expect(parseSnapshotStatus('Error: invalid database')).toBeUndefined();
    expect(parseSnapshotStatus('{"hash":1}')).toBeUndefined();
  });

  it('names a backup by its time, sortable', () => {
    expect(backupName(new Date('2026-11-30T09:15:00.123Z'))).toBe('etcd-20261130-091500.db');
  });
});

/** Fake members: etcdctl, systemctl and kubectl answer as a healthy lab would. */
function fakeLab(options: { failRestoreOn?: string; notASnapshot?: boolean } = {}) {
  const log: string[] = [];
  const hosts: Record<string, FakeHost> = {};
  const handler =
    (vm: string): Handler =>
    (argv) => {
      const line = argv.join(' ');
      log.push(`${vm}: ${line}`);
      if (line.includes('snapshot status')) {
        return options.notASnapshot
          ? { exitCode: 1, stderr: 'Error: invalid database' }
          : { stdout: '{"hash":1,"revision":4242,"totalKey":900,"totalSize":2101248}' };
      }
      if (line.includes('snapshot restore') && vm === options.failRestoreOn) {
        return { exitCode: 1, stderr: 'no space left on device' };
      }
      if (line.includes('/healthz')) return { stdout: 'ok' };
      if (line.includes('componentstatuses')) {
        return {
          stdout: JSON.stringify({
            items: ['scheduler', 'controller-manager', 'etcd-0'].map((name) => ({
              metadata: { name },
              conditions: [{ type: 'Healthy', status: 'True' }],
            })),
          }),
        };
      }
      if (line.includes('get nodes')) {
        return {
          stdout:
            'node1   Ready   <none>   1h   v1.20.2\nnode2   Ready   <none>   1h   v1.20.2\nnode3   Ready   <none>   1h   v1.20.2\n',
        };
      }
      if (line.includes(' get /coreos.com/network/config'))
        return { exitCode: 4, stderr: 'Key not found' };
      return undefined;
    };
  const spec = defaultSpec();
  for (const vm of spec.vms) hosts[vm.name] = new FakeHost(vm.name, handler(vm.name));
  return { spec, hosts, log };
}

/** Index of the first log line matching, -1 when none. */
const at = (log: string[], pattern: RegExp) => log.findIndex((line) => pattern.test(line));

describe('etcd restore on the members (fakes)', () => {
  it('stops kubelets, control plane, then etcd; rebuilds every member; starts etcd first, then the rest', async () => {
    const { spec, hosts, log } = fakeLab();
    const report = await restoreMembers(
      testStepContext(spec, hosts),
      '/tmp/b.db',
      '20261201-000000',
    );
    expect(report.status.revision).toBe(4242);
    expect(Object.keys(report.keptData)).toEqual(['master', 'node1', 'node2']);
    const stopEtcd = at(log, /systemctl stop etcd/);
    expect(at(log, /node1: systemctl stop kubelet/)).toBeLessThan(stopEtcd);
    expect(
      at(log, /master: systemctl stop kube-scheduler kube-controller-manager kube-apiserver/),
    ).toBeLessThan(stopEtcd);
    for (const member of ['master', 'node1', 'node2']) {
      const restore = at(log, new RegExp(`^${member}: .*snapshot restore .*--name=${member} `));
      expect(restore).toBeGreaterThan(stopEtcd);
      expect(at(log, new RegExp(`^${member}: mv /var/lib/etcd`))).toBeLessThan(restore);
    }
    expect(at(log, /node3: .*snapshot restore/)).toBe(-1);
    const healthy = at(log, /endpoint health/);
    expect(at(log, /systemctl start --no-block etcd/)).toBeLessThan(healthy);
    expect(
      at(log, /master: systemctl start kube-apiserver kube-controller-manager kube-scheduler/),
    ).toBeGreaterThan(healthy);
    expect(at(log, /node3: systemctl start kubelet/)).toBeGreaterThan(at(log, /\/healthz/));
    // The debian stack's flannel reads etcd's v3 keyspace: the snapshot holds its config.
    expect(at(log, /try-restart flanneld/)).toBe(-1);
  });

  it("with flannel 0.10 (v1.11.1 stack) writes flannel's config again in the v2 keyspace and restarts flanneld on every VM, before the control plane", async () => {
    const { spec, hosts, log } = fakeLab();
    const ctx = testStepContext(spec, hosts, { profile: installProfile('v1.11.1') });
    await restoreMembers(ctx, '/tmp/b.db', '20261201-000000');
    const set = at(log, /^master: .* set \/coreos\.com\/network\/config /);
    expect(set).toBeGreaterThan(at(log, /endpoint health/));
    for (const vm of spec.vms) {
      expect(at(log, new RegExp(`^${vm.name}: systemctl try-restart flanneld$`))).toBeGreaterThan(
        set,
      );
    }
    expect(at(log, /systemctl start kube-apiserver/)).toBeGreaterThan(
      at(log, /try-restart flanneld/),
    );
  });

  it('a member that fails to restore: every member gets its old data back and the cluster starts as it was', async () => {
    const { spec, hosts, log } = fakeLab({ failRestoreOn: 'node2' });
    const failed = await restoreMembers(
      testStepContext(spec, hosts),
      '/tmp/b.db',
      '20261201-000000',
    ).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(KlabError);
    expect((failed as KlabError).code).toBe('KLAB_ETCD_RESTORE_FAILED');
    expect((failed as KlabError).message).toMatch(
      /node2.*every member has its data from before the restore again/,
    );
    for (const member of ['master', 'node1', 'node2']) {
      expect(
        at(log, new RegExp(`^${member}: sh -c rm -rf "\\$1" && mv "\\$2" "\\$1" sh /var/lib/etcd`)),
      ).toBeGreaterThan(-1);
    }
    expect(at(log, /systemctl start --no-block etcd/)).toBeGreaterThan(at(log, /rm -rf "\$1"/));
    expect(at(log, /systemctl start kubelet/)).toBeGreaterThan(-1);
  });

  it('a file that is no snapshot stops nothing', async () => {
    const { spec, hosts, log } = fakeLab({ notASnapshot: true });
    const failed = await restoreMembers(testStepContext(spec, hosts), '/tmp/b.db', 'x').catch(
      (error: unknown) => error,
    );
    expect((failed as KlabError).code).toBe('KLAB_USAGE');
    expect(at(log, /systemctl stop/)).toBe(-1);
    expect(hosts.master?.uploads.map((u) => u.localPath)).toEqual(['/tmp/b.db']);
  });
});
