import { EventEmitter } from 'node:events';
import type { Client } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { SshHost } from '../../../src/adapters/ssh.js';

/** A channel that prints `out` and exits 0 once its input ends. */
function channel(out: string): EventEmitter {
  const stream = Object.assign(new EventEmitter(), {
    stderr: new EventEmitter(),
    end: () => {
      setImmediate(() => {
        stream.emit('data', Buffer.from(out));
        stream.emit('close', 0);
      });
    },
    close: () => undefined,
  });
  return stream;
}

/** An ssh2 client whose sshd refuses the first `refusals` channels with the given reason. */
function refusingClient(refusals: number, reason: number): { client: Client; opens: () => number } {
  let opens = 0;
  const client = Object.assign(new EventEmitter(), {
    exec: (_line: string, callback: (error: Error | undefined, stream?: EventEmitter) => void) => {
      opens += 1;
      if (opens <= refusals) {
        const error = Object.assign(new Error('(SSH) Channel open failure: open failed'), {
          reason,
        });
        setImmediate(() => callback(error));
      } else setImmediate(() => callback(undefined, channel('node1\n')));
    },
  });
  return { client: client as unknown as Client, opens: () => opens };
}

describe('SshHost: channels sshd refuses', () => {
  it('asks again when sshd refuses a channel ("open failed": nothing ran), and the command runs', async () => {
    // OpenSSH's answer at MaxSessions: SSH2_OPEN_CONNECT_FAILED, "open failed".
    const { client, opens } = refusingClient(2, 2);
    const host = new SshHost('node1', client);
    const result = await host.run(['hostname']);
    expect(result).toMatchObject({ exitCode: 0, stdout: 'node1\n' });
    expect(opens()).toBe(3);
  });

  it('does not ask again for a channel type sshd does not know, and names the VM', async () => {
    const { client, opens } = refusingClient(1, 3);
    const host = new SshHost('node1', client);
    await expect(host.run(['hostname'])).rejects.toMatchObject({
      code: 'KLAB_SSH_FAILED',
      message: expect.stringContaining('node1'),
    });
    expect(opens()).toBe(1);
  });

  it('asks again when sshd refuses the SFTP session, and the file is written', async () => {
    let sftpOpens = 0;
    const written: string[] = [];
    const { client } = refusingClient(0, 2);
    Object.assign(client, {
      sftp: (callback: (error: Error | undefined, sftp?: unknown) => void) => {
        sftpOpens += 1;
        if (sftpOpens === 1) {
          const error = Object.assign(new Error('(SSH) Channel open failure: open failed'), {
            reason: 2,
          });
          setImmediate(() => callback(error));
          return;
        }
        const sftp = {
          writeFile: (path: string, _content: unknown, _options: unknown, done: () => void) => {
            written.push(path);
            done();
          },
        };
        setImmediate(() => callback(undefined, sftp));
      },
    });
    const host = new SshHost('node1', client);
    await host.writeFile('/tmp/klab-note', 'hello\n');
    expect(sftpOpens).toBe(2);
    expect(written).toEqual(['/tmp/klab-note']);
  });
});
