import { describe, expect, it } from 'vitest';
import { KlabError } from '../../../src/model/errors.js';
import {
  assertComplete,
  checkpointName,
  formatAge,
  labSnapshots,
  validateSnapshotName,
} from '../../../src/model/snapshots.js';

const T = Date.parse('2026-11-24T10:00:00Z');

describe('snapshot names', () => {
  it('names checkpoints after the step they follow', () => {
    expect(checkpointName('etcd')).toBe('after-etcd');
  });

  it('accepts short safe names and rejects the rest', () => {
    expect(() => validateSnapshotName('before-etcd')).not.toThrow();
    expect(() => validateSnapshotName('lesson3.v2')).not.toThrow();
    for (const bad of ['', 'Has Space', '-dash', 'x'.repeat(64), 'a/b']) {
      expect(() => validateSnapshotName(bad), bad).toThrow(KlabError);
    }
  });

  it('reserves after-* for automatic checkpoints', () => {
    expect(() => validateSnapshotName('after-etcd')).toThrow(/checkpoints/);
    expect(() => validateSnapshotName('after-etcd', true)).not.toThrow();
  });
});

describe('lab snapshots from per-VM lists', () => {
  const perVm = new Map([
    [
      'master',
      [
        { name: 'base', createdAt: T, stateBytes: 100 },
        { name: 'after-hosts-file', createdAt: T + 60_000, stateBytes: 10 },
      ],
    ],
    [
      'node1',
      [
        { name: 'base', createdAt: T + 1000, stateBytes: 200 },
        { name: 'after-hosts-file', createdAt: T + 61_000, stateBytes: 20 },
      ],
    ],
    ['node2', [{ name: 'base', createdAt: T + 2000, stateBytes: 300 }]],
  ]);
  const snaps = labSnapshots(perVm);

  it('groups by name, newest first, with the step and total state size', () => {
    expect(
      snaps.map((s) => [s.name, s.afterStep, s.vms.join(','), s.stateBytes, s.createdAt]),
    ).toEqual([
      ['after-hosts-file', 'hosts-file', 'master,node1', 30, T + 60_000],
      ['base', undefined, 'master,node1,node2', 600, T],
    ]);
  });

  it('lets a reset use a snapshot every VM has', () => {
    expect(assertComplete(snaps[1], 'base', ['master', 'node1', 'node2']).name).toBe('base');
  });

  it('refuses a snapshot that some VMs lack, naming them (all or nothing)', () => {
    expect(() =>
      assertComplete(snaps[0], 'after-hosts-file', ['master', 'node1', 'node2']),
    ).toThrow(/exists on master, node1 but not on node2; klab only resets all VMs together/);
    try {
      assertComplete(undefined, 'nope', ['master']);
    } catch (error) {
      expect((error as KlabError).code).toBe('KLAB_SNAPSHOT_MISSING');
      expect((error as KlabError).exitCode).toBe(2);
    }
  });

  it('formats ages for the list', () => {
    expect([
      formatAge(5_000),
      formatAge(600_000),
      formatAge(7_200_000),
      formatAge(3 * 86_400_000),
    ]).toEqual(['5s', '10m', '2h', '3d']);
  });
});
