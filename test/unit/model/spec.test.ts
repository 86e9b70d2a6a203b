import { mkdir, mkdtemp, readdir, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KlabError } from '../../../src/model/errors.js';
import { labNameFromDir } from '../../../src/model/spec.js';
import { loadSpec, parseSpecText } from '../../../src/model/spec-file.js';
import { defaultSpec } from '../../helpers/specs.js';

function problems(yaml: string): string[] {
  try {
    parseSpecText(yaml, 'lab', 'klab.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(KlabError);
    const klab = error as KlabError;
    expect(klab.fault).toBe('user');
    expect(klab.exitCode).toBe(2);
    return [...klab.details];
  }
  throw new Error('expected the spec to be rejected');
}

describe('lab spec defaults', () => {
  it('is the tutorial lab: master + node1..3, 2048 MB, 30 GB, 2 vCPUs, ubuntu1804, v1.11.1', () => {
    const spec = defaultSpec();
    expect(spec.vms.map((vm) => [vm.name, vm.role, vm.ip])).toEqual([
      ['master', 'master', '192.168.56.10'],
      ['node1', 'node', '192.168.56.11'],
      ['node2', 'node', '192.168.56.12'],
      ['node3', 'node', '192.168.56.13'],
    ]);
    for (const vm of spec.vms) expect([vm.memory, vm.cpus, vm.disk]).toEqual([2048, 2, 30]);
    expect(spec.box).toBe('generic/ubuntu1804');
    expect(spec.stack).toBe('v1.11.1');
    expect(spec.insisted).toEqual({ box: false, stack: false });
    expect(spec.network.managementGateway).toBe('192.168.121.1');
    expect(spec.hypervisor).toBe('auto');
    expect(spec.etcdMembers).toEqual(['master', 'node1', 'node2']);
    expect(spec.pki).toEqual({ caDays: 3650, certDays: 1095 });
  });

  it('fills per-node defaults when only names are given', () => {
    const spec = parseSpecText(
      'nodes:\n  - name: master\n    role: master\n  - name: w1\n',
      'x',
      'f',
    );
    expect(spec.vms[1]).toMatchObject({
      name: 'w1',
      role: 'node',
      memory: 2048,
      cpus: 2,
      disk: 30,
    });
    expect(spec.name).toBe('x');
  });

  it('records which of box and stack the user insisted on', () => {
    const spec = parseSpecText('box: klab/debian-12\n', 'x', 'f');
    expect(spec.insisted).toEqual({ box: true, stack: false });
  });
});

describe('lab spec validation', () => {
  it('reports nodes[2].memory: must be >= 1024', () => {
    const yaml = `nodes:
  - {name: master, role: master}
  - {name: node1}
  - {name: node2, memory: 512}
`;
    expect(problems(yaml)).toEqual(['nodes[2].memory: must be >= 1024']);
  });

  it('reports every problem at once, each with its path', () => {
    const yaml = `stack: v9
hypervisor: vmware
colour: blue
network:
  subnet: 10.0.0.0/33
nodes:
  - {name: Master, role: boss, cpus: 0}
  - {name: node1, disk: "big"}
`;
    expect(problems(yaml).sort()).toEqual(
      [
        'colour: unknown setting',
        'hypervisor: must be "auto", "kvm" or "qemu"',
        'network.subnet: must be an IPv4 network in CIDR form with a /8../30 prefix, e.g. 192.168.56.0/24',
        'nodes[0].cpus: must be >= 1',
        'nodes[0].name: must be a valid host name: lower-case letters, digits and "-", starting with a letter, not ending with "-" (max 31)',
        'nodes[0].role: must be "master" or "node"',
        'nodes[1].disk: must be a number (GB)',
        'stack: must be one of: v1.11.1, debian',
      ].sort(),
    );
  });

  it('rejects duplicate names, a missing master, and IPs outside the subnet or reserved', () => {
    const yaml = `nodes:
  - {name: a, ip: 192.168.56.1}
  - {name: a, ip: 10.1.1.1}
  - {name: b, ip: 192.168.56.20}
  - {name: c, ip: 192.168.56.20}
`;
    expect(problems(yaml).sort()).toEqual(
      [
        'nodes: needs one VM with role: master',
        'nodes[0].ip: must not be the network, gateway (.1) or broadcast address',
        'nodes[1].ip: must be inside network.subnet (192.168.56.0/24)',
        'nodes[1].name: duplicate VM name "a" (also nodes[0])',
        'nodes[3].ip: 192.168.56.20 is already used by nodes[2]',
      ].sort(),
    );
  });

  it('checks etcd members: known VMs, odd count; and cert lifetimes within the CA', () => {
    expect(
      problems('etcd:\n  members: [master, node1]\npki:\n  caDays: 100\n  certDays: 200\n').sort(),
    ).toEqual([
      'etcd.members: has 2 members; etcd needs an odd number to keep quorum',
      'pki.certDays: must not exceed pki.caDays',
    ]);
    expect(problems('etcd:\n  members: [master, ghost, node1]\n')).toEqual([
      'etcd.members[1]: "ghost" is not a VM in nodes',
    ]);
  });

  it('rejects overlapping lab networks', () => {
    expect(problems('network:\n  podCidr: 192.168.0.0/16\n')).toEqual([
      'network.podCidr: overlaps network.subnet (192.168.56.0/24)',
      'network.podCidr: overlaps network.managementSubnet (192.168.121.0/24)',
    ]);
  });

  it('rejects what it used to accept wrongly: two masters, a node name ending in "-", a public subnet, a box with spaces', () => {
    expect(
      problems('nodes:\n  - {name: master, role: master}\n  - {name: m2, role: master}\n'),
    ).toEqual([
      'nodes: has 2 VMs with role: master (master, m2); klab builds one control-plane VM, which every kubeconfig points at: give the others role: node',
    ]);
    expect(problems('nodes:\n  - {name: master, role: master}\n  - {name: node1-}\n')).toEqual([
      'nodes[1].name: must be a valid host name: lower-case letters, digits and "-", starting with a letter, not ending with "-" (max 31)',
    ]);
    expect(problems('network:\n  subnet: 8.8.8.0/24\n')).toEqual([
      'network.subnet: 8.8.8.0/24 is a public range; use a private one (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) so that the lab never hides real addresses',
    ]);
    // Wider than any private range is public too.
    expect(problems('network:\n  serviceCidr: 10.0.0.0/7\n')).toHaveLength(1);
    expect(problems('box: "generic/ubuntu 1804"\n')).toEqual([
      'box: must be a Vagrant box name such as generic/ubuntu1804 (letters, digits, ".", "_", "-", one "/")',
    ]);
    expect(parseSpecText('box: klab/debian-12\n', 'lab', 'klab.yaml').box).toBe('klab/debian-12');
  });

  it('checks etcd raft timing: ranges, and election >= 5 x heartbeat as etcd demands', () => {
    expect(problems('etcd:\n  heartbeatMs: 500\n  electionMs: 1000\n')).toEqual([
      'etcd.electionMs: must be at least 5 x etcd.heartbeatMs (2500); etcd refuses to start otherwise',
    ]);
    expect(problems('etcd:\n  heartbeatMs: 10\n')).toEqual(['etcd.heartbeatMs: must be >= 50']);
    expect(
      parseSpecText('etcd:\n  heartbeatMs: 250\n  electionMs: 2500\n', 'lab', 'klab.yaml')
        .etcdTiming,
    ).toEqual({ heartbeatMs: 250, electionMs: 2500 });
  });

  it('rejects a subnet too small for the VMs', () => {
    expect(problems('network:\n  subnet: 192.168.56.0/29\n')).toEqual([
      'network.subnet: is too small for 4 VMs starting at .10',
    ]);
  });

  it('reports YAML syntax errors as KLAB_SPEC_PARSE', () => {
    try {
      parseSpecText('nodes:\n  - name: master\n   role: x\n', 'lab', 'klab.yaml');
      expect.unreachable();
    } catch (error) {
      expect((error as KlabError).code).toBe('KLAB_SPEC_PARSE');
      expect((error as KlabError).details.length).toBeGreaterThan(0);
    }
  });

  it('rejects a document that is not a mapping', () => {
    expect(() => parseSpecText('- a\n- b\n', 'lab', 'klab.yaml')).toThrow(/must be a mapping/);
  });
});

describe('loadSpec', () => {
  it('uses defaults without klab.yaml and names the lab after the directory', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab My_Lab-'));
    const spec = await loadSpec(dir);
    expect(spec.name).toBe(labNameFromDir(path.basename(dir)));
    expect(spec.vms).toHaveLength(4);
  });

  it('lets flags override box and stack, and marks them insisted', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'name: t\n');
    const spec = await loadSpec(dir, { box: 'klab/debian-12', stack: 'debian' });
    expect([spec.box, spec.stack, spec.insisted.box, spec.insisted.stack]).toEqual([
      'klab/debian-12',
      'debian',
      true,
      true,
    ]);
  });

  it('touches nothing when the file is broken', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'nodes: 3\n');
    await expect(loadSpec(dir)).rejects.toThrow(/problem/);
    expect(await readdir(dir)).toEqual(['klab.yaml']);
  });

  async function refusal(setup: (dir: string) => Promise<void>): Promise<KlabError> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-bad-'));
    await setup(dir);
    const before = await readdir(dir);
    const error = await loadSpec(dir).then(
      () => {
        throw new Error('expected a refusal');
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KlabError);
    expect(await readdir(dir)).toEqual(before);
    return error as KlabError;
  }

  it('refuses a klab.yaml that is a directory, a symlink loop, dangling or unreadable, with exit 2', async () => {
    const asDir = await refusal((dir) => mkdir(path.join(dir, 'klab.yaml')));
    expect([asDir.code, asDir.exitCode]).toEqual(['KLAB_SPEC_PARSE', 2]);
    expect(asDir.message).toMatch(/klab\.yaml is a directory, not a file$/);
    const loop = await refusal(async (dir) => {
      await symlink(path.join(dir, 'b'), path.join(dir, 'klab.yaml'));
      await symlink(path.join(dir, 'klab.yaml'), path.join(dir, 'b'));
    });
    expect(loop.message).toMatch(/klab\.yaml is a symbolic link loop$/);
    const dangling = await refusal((dir) => symlink('/nonexistent/x', path.join(dir, 'klab.yaml')));
    expect(dangling.message).toMatch(/is a symbolic link to nothing$/);
    if (process.getuid?.() !== 0) {
      const unreadable = await refusal(async (dir) => {
        await writeFile(path.join(dir, 'klab.yaml'), 'name: x\n', { mode: 0o000 });
      });
      expect(unreadable.message).toMatch(/permission denied/);
    }
  });

  it('refuses a lab directory that is a regular file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-'));
    const file = path.join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    await expect(loadSpec(file)).rejects.toMatchObject({
      code: 'KLAB_USAGE',
      message: `${file} is a file, not a lab directory`,
    });
  });

  it('refuses an alias bomb, binary junk and a huge file quickly, with short messages', async () => {
    const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const n of 'bcdefghi') {
      const prev = String.fromCharCode(n.charCodeAt(0) - 1);
      lol.push(
        `${n}: &${n} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`,
      );
    }
    const bomb = await refusal((dir) =>
      writeFile(path.join(dir, 'klab.yaml'), `${lol.join('\n')}\n`),
    );
    expect(bomb.code).toBe('KLAB_SPEC_PARSE');
    expect(bomb.message).toMatch(/cannot be read as YAML$/);

    const junk = await refusal((dir) =>
      writeFile(
        path.join(dir, 'klab.yaml'),
        Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 256)),
      ),
    );
    expect(junk.message).toMatch(/is not a text file \(it holds binary data\)$/);
    expect(JSON.stringify(junk).length + junk.message.length).toBeLessThan(2000);

    const started = Date.now();
    const huge = await refusal((dir) =>
      writeFile(path.join(dir, 'klab.yaml'), `name: x\n# ${'y'.repeat(10 * 1024 * 1024)}\n`),
    );
    expect(huge.message).toMatch(/is 1048\d{4} bytes; a klab.yaml is a few KB/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('keeps every finding short, however long the junk that caused it', () => {
    const long = `name: ${'x'.repeat(5000)}\n${Array.from({ length: 40 }, (_, i) => `bogus${i}: 1`).join('\n')}\n`;
    const details = problems(long);
    expect(details.length).toBeLessThanOrEqual(26);
    expect(details.at(-1)).toMatch(/^\.\.\. and \d+ more$/);
    for (const line of details) expect(line.length).toBeLessThanOrEqual(203);
  });

  it('turns directory names into lab names', () => {
    expect(labNameFromDir('My Lab_2')).toBe('my-lab-2');
    expect(labNameFromDir('123')).toBe('lab');
  });
});
