import { describe, expect, it } from 'vitest';
import { parseNetInfoBridge, parseSnapshotTable } from '../../../src/adapters/libvirt.js';

// As printed by `virsh snapshot-list DOMAIN` (libvirt 9.0), names with dots and underscores.
const SNAPSHOT_TABLE = ` Name                  Creation Time               State
------------------------------------------------------------
 after-etcd            2026-12-05 14:53:45 +0000   running
 my.snap_2             2026-12-05 15:01:02 +0000   shutoff
 east                  2026-12-05 23:01:02 +0800   running

`;

describe('parseSnapshotTable', () => {
  it('maps every snapshot to its creation time, zone offset applied', () => {
    const times = parseSnapshotTable(SNAPSHOT_TABLE);
    expect([...times.keys()]).toEqual(['after-etcd', 'my.snap_2', 'east']);
    expect(times.get('after-etcd')).toBe(Date.UTC(2026, 11, 5, 14, 53, 45));
    expect(times.get('my.snap_2')).toBe(Date.UTC(2026, 11, 5, 15, 1, 2));
    expect(times.get('east')).toBe(Date.UTC(2026, 11, 5, 15, 1, 2));
  });

  it('reads an empty list (header only) as no snapshots', () => {
    const header = ' Name   Creation Time   State\n--------------------------------\n\n';
    expect(parseSnapshotTable(header).size).toBe(0);
  });
});

describe('parseNetInfoBridge', () => {
  it('finds the bridge of a libvirt network', () => {
    expect(parseNetInfoBridge('Name:           klab-lab\nBridge:         virbr3\n')).toBe('virbr3');
    expect(parseNetInfoBridge('Name: x\n')).toBeUndefined();
  });
});
