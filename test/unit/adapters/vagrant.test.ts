import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { libvirtUnreachable } from '../../../src/adapters/libvirt.js';
import {
  parseBoxList,
  parseMachineReadable,
  parseSshConfig,
  parseStatus,
  Vagrant,
} from '../../../src/adapters/vagrant.js';
import { KlabError } from '../../../src/model/errors.js';

const STATUS = `1732480000,master,metadata,provider,libvirt
1732480000,master,provider-name,libvirt
1732480000,master,state,running
1732480000,master,state-human-short,running
1732480000,node1,metadata,provider,libvirt
1732480000,node1,state,shutoff
1732480000,node2,state,not_created
1732480000,,ui,info,Current machine states:\\n\\nmaster running (libvirt)%!(VAGRANT_COMMA) more
`;

const SSH_CONFIG = `Host master
  HostName 192.168.121.58
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /lab/.vagrant/machines/master/libvirt/private_key
  IdentityFile /root/.vagrant.d/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host node1
  HostName "192.168.121.59"
  User vagrant
  Port 2222
  IdentityFile "/lab dir/.vagrant/machines/node1/libvirt/private_key"
`;

const BOXES = `1732480000,,box-name,generic/ubuntu1804
1732480000,,box-provider,libvirt
1732480000,,box-version,4.3.12
1732480000,,box-name,klab/debian-12
1732480000,,box-provider,libvirt
1732480000,,box-version,0
`;

describe('vagrant machine-readable parsing', () => {
  it('parses rows and unescapes commas and newlines', () => {
    const rows = parseMachineReadable(STATUS);
    const ui = rows.find((row) => row.type === 'ui');
    expect(ui?.data[1]).toBe('Current machine states:\n\nmaster running (libvirt), more');
  });

  it('reads each VM state', () => {
    expect([...parseStatus(STATUS)]).toEqual([
      ['master', 'running'],
      ['node1', 'shutoff'],
      ['node2', 'not_created'],
    ]);
  });

  it('reads ssh-config blocks, keeping the first IdentityFile and unquoting', () => {
    expect(parseSshConfig(SSH_CONFIG)).toEqual([
      {
        host: 'master',
        hostName: '192.168.121.58',
        user: 'vagrant',
        port: 22,
        identityFile: '/lab/.vagrant/machines/master/libvirt/private_key',
      },
      {
        host: 'node1',
        hostName: '192.168.121.59',
        user: 'vagrant',
        port: 2222,
        identityFile: '/lab dir/.vagrant/machines/node1/libvirt/private_key',
      },
    ]);
  });

  it('reads the box list', () => {
    expect(parseBoxList(BOXES)).toEqual([
      { name: 'generic/ubuntu1804', provider: 'libvirt', version: '4.3.12' },
      { name: 'klab/debian-12', provider: 'libvirt', version: '0' },
    ]);
  });
});

describe('Vagrant adapter with a fake vagrant', () => {
  async function fakeVagrant(script: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-vagrant-'));
    const file = path.join(dir, 'vagrant');
    await writeFile(file, `#!/bin/sh\n${script}\n`);
    await chmod(file, 0o755);
    return file;
  }

  it('passes argv and reads status', async () => {
    const exe = await fakeVagrant(
      `[ "$1 $2" = "status --machine-readable" ] || exit 9\ncat <<'X'\n${STATUS}X`,
    );
    const states = await new Vagrant(os.tmpdir(), { executable: exe }).status();
    expect(states.get('node1')).toBe('shutoff');
  });

  it('turns a failing up into KLAB_VAGRANT_FAILED with the output tail', async () => {
    const exe = await fakeVagrant('echo "Error while creating domain: boom" >&2\nexit 1');
    const error = await new Vagrant(os.tmpdir(), { executable: exe })
      .up(['master'], false, 10_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_VAGRANT_FAILED');
    expect((error as KlabError).outputTail).toContain('boom');
    expect((error as KlabError).command).toEqual([
      'vagrant',
      'up',
      '--provider=libvirt',
      '--no-parallel',
      'master',
    ]);
  });

  it('reports a VM that is not running as KLAB_VM_NOT_RUNNING', async () => {
    const exe = await fakeVagrant(
      'echo "The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH." >&2\nexit 1',
    );
    const error = await new Vagrant(os.tmpdir(), { executable: exe })
      .sshConfig('node1')
      .catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_VM_NOT_RUNNING');
  });

  it('says vagrant is missing when it is not installed', async () => {
    const error = await new Vagrant(os.tmpdir(), { executable: '/nonexistent/vagrant' })
      .status()
      .catch((e: unknown) => e);
    expect((error as KlabError).code).toBe('KLAB_TOOL_MISSING');
  });

  it('thins out box upload progress lines', async () => {
    const exe = await fakeVagrant(
      `for i in 0 1 2 3 4 5 10 11 20 50 99 100; do printf 'Progress: %s%%\\r' "$i"; done; echo; echo done`,
    );
    const lines: string[] = [];
    await new Vagrant(os.tmpdir(), { executable: exe, onLine: (l) => lines.push(l) }).halt();
    expect(lines).toEqual([
      'Progress: 0%',
      'Progress: 10%',
      'Progress: 20%',
      'Progress: 50%',
      'Progress: 99%',
      'Progress: 100%',
      'done',
    ]);
  });
});

describe('virsh failures', () => {
  it('tells an unreachable libvirtd from a missing domain', () => {
    expect(
      libvirtUnreachable(
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
      ),
    ).toBe(true);
    expect(libvirtUnreachable("error: failed to get domain 'lab_master'")).toBe(false);
  });
});
