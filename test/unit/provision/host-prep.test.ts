import { describe, expect, it } from 'vitest';
import {
  defaultRouteStep,
  desiredInternalRoutes,
  envFile,
  parseDefaultRoutes,
  routeIsRight,
} from '../../../provision/default-route/index.js';
import { BEGIN, END, hostsFileStep, renderHostsFile } from '../../../provision/hosts-file/index.js';
import { HOST_PREP_STEPS } from '../../../provision/index.js';
import type { StepContext } from '../../../provision/lib/step.js';
import { machineIdStep, vmsNeedingNewId } from '../../../provision/machine-id/index.js';
import { runSteps } from '../../../src/app/pipeline.js';
import { emptyState } from '../../../src/model/state.js';
import { FakeHost } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();
const entries = spec.vms.map((vm) => ({ ip: vm.ip, name: vm.name }));

function context(hosts: Record<string, FakeHost>): StepContext {
  return testStepContext(spec, hosts);
}

describe('the ordered step list', () => {
  it('prepares hosts in the documented order', () => {
    expect(HOST_PREP_STEPS.map((step) => step.id)).toEqual([
      'default-route',
      'hosts-file',
      'machine-id',
    ]);
  });
});

describe('hosts file', () => {
  const debianBox =
    '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1 node1 node1\n';

  it('adds the lab block and drops the loopback mapping of lab names', () => {
    expect(renderHostsFile(debianBox, entries)).toBe(
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\n${BEGIN}\n10.77.0.10\tmaster\n10.77.0.50\tnode1\n${END}\n`,
    );
  });

  it('is idempotent and replaces an old block', () => {
    const once = renderHostsFile(debianBox, entries);
    expect(renderHostsFile(once, entries)).toBe(once);
    const changed = renderHostsFile(once, [{ ip: '10.77.0.99', name: 'master' }]);
    expect(changed).toContain('10.77.0.99\tmaster');
    expect(changed).not.toContain('10.77.0.50');
  });

  it('drops lab names mapped to any other address (e.g. the management network)', () => {
    const docker = '127.0.0.1\tlocalhost\n172.17.0.2\tmaster\n# 10.0.0.1 master (comment)\n';
    expect(renderHostsFile(docker, entries)).toBe(
      `127.0.0.1\tlocalhost\n# 10.0.0.1 master (comment)\n\n${BEGIN}\n10.77.0.10\tmaster\n10.77.0.50\tnode1\n${END}\n`,
    );
  });

  it('keeps other names on a loopback line', () => {
    expect(renderHostsFile('127.0.1.1 node1 other\n', entries)).toMatch(/^127\.0\.1\.1\tother\n/);
  });

  it('writes the file with sudo when it differs, then verifies with getent', async () => {
    const host = new FakeHost('node1', (argv) => {
      if (argv[0] === 'getent') {
        const name = argv[2];
        const entry = entries.find((e) => e.name === name);
        return { stdout: `${entry?.ip} STREAM ${name}\n` };
      }
      return undefined;
    });
    host.files.set('/etc/hosts', debianBox);
    const ctx = context({ node1: host });
    const vm = spec.vms[1];
    if (!vm) throw new Error('no vm');
    expect(await hostsFileStep.check(ctx, vm)).toBe(false);
    await hostsFileStep.apply(ctx, vm);
    expect(host.writes).toEqual([{ path: '/etc/hosts', mode: 0o644, sudo: true }]);
    await hostsFileStep.verify(ctx, vm);
    expect(await hostsFileStep.check(ctx, vm)).toBe(true);
  });

  it('fails verification when a name resolves elsewhere', async () => {
    const host = new FakeHost('node1', (argv) =>
      argv[0] === 'getent' ? { stdout: '127.0.1.1 STREAM x\n' } : undefined,
    );
    const vm = spec.vms[1];
    if (!vm) throw new Error('no vm');
    await expect(hostsFileStep.verify(context({ node1: host }), vm)).rejects.toThrow(
      /resolves master to 127.0.1.1/,
    );
  });
});

describe('default route', () => {
  it('parses ip route output from ifupdown and networkd guests', () => {
    const text = `default via 192.168.121.1 dev eth0
default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.15 metric 100
10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15`;
    expect(parseDefaultRoutes(text)).toEqual([
      { via: '192.168.121.1', dev: 'eth0' },
      { via: '10.0.2.2', dev: 'eth0' },
    ]);
  });

  it('wants exactly one route via the management gateway', () => {
    const want = { via: '10.78.0.1', dev: 'eth0' };
    expect(routeIsRight([want], want)).toBe(true);
    expect(routeIsRight([], want)).toBe(false);
    expect(routeIsRight([want, { via: '10.77.0.1', dev: 'eth1' }], want)).toBe(false);
  });

  it('installs the script, unit and env file, enables and starts the unit', async () => {
    let routes = '';
    const host = new FakeHost('master', (argv) => {
      if (argv[0] === 'ip') return { stdout: routes };
      if (argv.join(' ') === 'systemctl restart klab-default-route.service') {
        routes = `default via 10.78.0.1 dev eth0\n${spec.network.serviceCidr} dev eth1 scope link\n${spec.network.podCidr} dev eth1 scope link\n`;
      }
      if (argv[1] === 'is-enabled') return { stdout: 'enabled\n' };
      return undefined;
    });
    const ctx = context({ master: host });
    const vm = spec.vms[0];
    if (!vm) throw new Error('no vm');
    expect(await defaultRouteStep.check(ctx, vm)).toBe(false);
    await defaultRouteStep.apply(ctx, vm);
    await defaultRouteStep.verify(ctx, vm);
    expect(host.files.get('/etc/klab/default-route.env')).toBe(
      envFile({ via: '10.78.0.1', dev: 'eth0' }, desiredInternalRoutes(spec)),
    );
    expect(host.files.get('/etc/klab/default-route.env')).toContain(
      `KLAB_INTERNAL_CIDRS="${spec.network.serviceCidr} ${spec.network.podCidr}"`,
    );
    expect(host.files.get('/usr/local/sbin/klab-default-route')).toMatch(/^#!\/bin\/sh/);
    expect(host.files.get('/etc/systemd/system/klab-default-route.service')).toContain(
      'WantedBy=multi-user.target',
    );
    expect(host.commands()).toContain('sudo systemctl enable klab-default-route.service');
    expect(await defaultRouteStep.check(ctx, vm)).toBe(true);
  });

  it('fails verification when the service range is not kept inside the lab', async () => {
    const host = new FakeHost('master', (argv) => ({
      stdout:
        argv.at(-1) === 'default'
          ? 'default via 10.78.0.1 dev eth0\n'
          : `default via 10.78.0.1 dev eth0\n${spec.network.podCidr} dev eth1 scope link\n`,
    }));
    const vm = spec.vms[0];
    if (!vm) throw new Error('no vm');
    await expect(defaultRouteStep.verify(context({ master: host }), vm)).rejects.toThrow(
      `master does not route ${spec.network.serviceCidr} into the private network (eth1)`,
    );
  });

  it('fails verification, naming the routes it found, when there are two', async () => {
    const host = new FakeHost('master', () => ({
      stdout: 'default via 10.78.0.1 dev eth0\ndefault via 10.77.0.1 dev eth1\n',
    }));
    const vm = spec.vms[0];
    if (!vm) throw new Error('no vm');
    await expect(defaultRouteStep.verify(context({ master: host }), vm)).rejects.toThrow(
      /exactly one default route via 10.78.0.1 dev eth0, has via 10.78.0.1 dev eth0, via 10.77.0.1 dev eth1/,
    );
  });
});

describe('machine-id', () => {
  const a = 'a'.repeat(32);
  const b = 'b'.repeat(32);

  it('flags missing, malformed and shared ids', () => {
    expect(
      vmsNeedingNewId(
        new Map([
          ['m', a],
          ['n', b],
        ]),
      ),
    ).toEqual([]);
    expect(
      vmsNeedingNewId(
        new Map([
          ['m', a],
          ['n', a],
        ]),
      ),
    ).toEqual(['n']);
    expect(
      vmsNeedingNewId(
        new Map([
          ['m', ''],
          ['n', 'xyz'],
        ]),
      ),
    ).toEqual(['m', 'n']);
  });

  it('keeps the first VM of a sharing group, whatever the order of the calls', () => {
    const ids = new Map([
      ['master', a],
      ['node1', b],
      ['node2', a],
      ['node3', a],
    ]);
    expect(vmsNeedingNewId(ids)).toEqual(['node2', 'node3']);
  });

  it('gives the second of two VMs with the same id a new one through the pipeline', async () => {
    const hosts = { master: new FakeHost('master'), node1: new FakeHost('node1') };
    for (const host of Object.values(hosts)) host.files.set('/etc/machine-id', `${a}\n`);
    const state = emptyState();
    const outcomes = await runSteps([machineIdStep], context(hosts), state);
    expect(outcomes.map((o) => o.result)).toEqual(['already-done', 'applied']);
    const ids = Object.values(hosts).map((h) => h.files.get('/etc/machine-id'));
    expect(ids[0]).toBe(`${a}\n`);
    expect(ids[1]).not.toBe(ids[0]);
    expect(ids[1]).toMatch(/^[0-9a-f]{32}\n$/);
    expect(Object.keys(state.steps)).toEqual(['master', 'node1']);

    const again = await runSteps([machineIdStep], context(hosts), state);
    expect(again.map((o) => o.result)).toEqual(['already-done', 'already-done']);
  });
});
