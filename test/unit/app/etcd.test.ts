/** klab etcd backup / restore: the pieces that decide what runs on each member. */
import { describe, expect, it } from 'vitest';
import { backupName, parseSnapshotStatus, restoreArgs } from '../../../src/app/etcd.js';
import { etcdMembers } from '../../../src/model/topology.js';
import { defaultSpec } from '../../helpers/specs.js';

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
