/**
 * One SSH connection per VM for a whole run (ssh2), used through the RemoteHost interface.
 * Commands are argv arrays, quoted by model/shell.ts; files travel over SFTP.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import ssh2 from 'ssh2';
import { KlabError, tail } from '../model/errors.js';
import { type Clock, systemClock } from '../model/events.js';
import type {
  RemoteFileOptions,
  RemoteHost,
  RemoteResult,
  RemoteRunOptions,
} from '../model/remote.js';
import { commandLine } from '../model/shell.js';

const { Client } = ssh2;
type Ssh2Client = InstanceType<typeof Client>;
type Sftp = Parameters<Parameters<Ssh2Client['sftp']>[0]>[1];

export interface SshTarget {
  /** The lab VM name, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string | Buffer;
}

export interface SshConnectOptions {
  /** Keep retrying (VM still booting) until this many ms have passed. */
  timeoutMs: number;
  clock?: Clock;
  onLine?: (line: string) => void;
}

function connectOnce(target: SshTarget): Promise<Ssh2Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .on('ready', () => resolve(client))
      .on('error', (error) => reject(error))
      .connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey: target.privateKey,
        readyTimeout: 30_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 8,
      });
  });
}

export async function connectSsh(target: SshTarget, options: SshConnectOptions): Promise<SshHost> {
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + options.timeoutMs;
  let lastError: unknown;
  let delay = 500;
  for (;;) {
    try {
      const client = await connectOnce(target);
      return new SshHost(target.name, client, options.onLine);
    } catch (error) {
      lastError = error;
      const level = (error as { level?: string }).level;
      if (level === 'client-authentication') break;
    }
    if (clock.now() + delay > deadline) break;
    await clock.sleep(delay);
    delay = Math.min(delay * 2, 5000);
  }
  throw new KlabError(
    'KLAB_SSH_FAILED',
    `cannot open SSH to ${target.name} (${target.user}@${target.host}:${target.port}): ${
      (lastError as Error | undefined)?.message ?? 'unknown error'
    }`,
    {
      vm: target.name,
      cause: lastError,
      hint: 'Check that the VM is running ("klab status"); under software emulation a boot can take minutes.',
    },
  );
}

/** Whether anything accepts a TCP connection on host:port within timeoutMs. */
export function sshPortAnswers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function targetFromSshConfig(
  name: string,
  config: { hostName: string; port: number; user: string; identityFile: string },
): Promise<SshTarget> {
  return {
    name,
    host: config.hostName,
    port: config.port,
    user: config.user,
    privateKey: await readFile(config.identityFile),
  };
}

export class SshHost implements RemoteHost {
  private sftpSession: Promise<Sftp> | undefined;

  constructor(
    readonly name: string,
    private readonly client: Ssh2Client,
    private readonly onLine?: (line: string) => void,
  ) {}

  run(argv: readonly string[], options: RemoteRunOptions = {}): Promise<RemoteResult> {
    const line = commandLine(argv, { sudo: options.sudo ?? false, env: options.env ?? {} });
    return new Promise((resolve, reject) => {
      this.client.exec(line, (error, stream) => {
        if (error) {
          reject(
            new KlabError('KLAB_SSH_FAILED', `SSH exec on ${this.name} failed: ${error.message}`, {
              vm: this.name,
              command: argv,
            }),
          );
          return;
        }
        let stdout = '';
        let stderr = '';
        let partial = '';
        const emit = (chunk: string) => {
          if (!this.onLine || options.quiet) return;
          partial += chunk;
          const parts = partial.split(/\r?\n/);
          partial = parts.pop() ?? '';
          for (const part of parts) if (part.trim()) this.onLine(part);
        };
        let timer: NodeJS.Timeout | undefined;
        if (options.timeoutMs) {
          timer = setTimeout(() => {
            stream.close();
            reject(
              new KlabError('KLAB_TIMEOUT', `${argv.join(' ')} on ${this.name} timed out`, {
                vm: this.name,
                command: argv,
                outputTail: tail(`${stdout}\n${stderr}`),
              }),
            );
          }, options.timeoutMs);
        }
        stream.on('data', (data: Buffer) => {
          const text = data.toString('utf8');
          stdout += text;
          emit(text);
        });
        stream.stderr.on('data', (data: Buffer) => {
          const text = data.toString('utf8');
          stderr += text;
          emit(text);
        });
        stream.on('close', (code: number | null, signal?: string) => {
          if (timer) clearTimeout(timer);
          if (partial.trim() && this.onLine && !options.quiet) this.onLine(partial);
          const exitCode = code ?? (signal ? 128 : 255);
          if (exitCode !== 0 && !options.allowFailure) {
            reject(
              new KlabError(
                'KLAB_STEP_FAILED',
                `command failed on ${this.name} (exit ${exitCode}): ${argv.join(' ')}`,
                { vm: this.name, command: argv, outputTail: tail(`${stdout}\n${stderr}`) },
              ),
            );
            return;
          }
          resolve({ exitCode, stdout, stderr });
        });
        if (options.stdinFile !== undefined) {
          const source = createReadStream(options.stdinFile);
          source.on('error', (error) => {
            stream.close();
            reject(
              new KlabError(
                'KLAB_SSH_FAILED',
                `cannot read ${options.stdinFile}: ${error.message}`,
                {
                  vm: this.name,
                  command: argv,
                },
              ),
            );
          });
          source.pipe(stream);
        } else if (options.stdin !== undefined) stream.end(options.stdin);
        else stream.end();
      });
    });
  }

  private sftp(): Promise<Sftp> {
    this.sftpSession ??= new Promise((resolve, reject) => {
      this.client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp)));
    });
    return this.sftpSession;
  }

  private async upload(path: string, content: string | Buffer, mode: number): Promise<void> {
    const sftp = await this.sftp();
    await new Promise<void>((resolve, reject) => {
      sftp.writeFile(path, content, { mode }, (error) => (error ? reject(error) : resolve()));
    });
  }

  async writeFile(
    path: string,
    content: string | Buffer,
    options: RemoteFileOptions = {},
  ): Promise<void> {
    const mode = options.mode ?? 0o644;
    try {
      if (!options.sudo) {
        await this.upload(path, content, mode);
        await this.run(['chmod', mode.toString(8), path]);
        return;
      }
      const staging = `/tmp/.klab-upload-${randomBytes(6).toString('hex')}`;
      await this.upload(staging, content, 0o600);
      try {
        // cp writes in place, so bind-mounted files (/etc/hosts in containers) work too.
        await this.run(['cp', '--no-preserve=mode,ownership', staging, path], { sudo: true });
        await this.run(['chmod', mode.toString(8), path], { sudo: true });
      } finally {
        await this.run(['rm', '-f', staging], { allowFailure: true });
      }
    } catch (error) {
      if (error instanceof KlabError) throw error;
      throw new KlabError(
        'KLAB_SSH_FAILED',
        `cannot write ${path} on ${this.name}: ${(error as Error).message}`,
        {
          vm: this.name,
          cause: error,
        },
      );
    }
  }

  async uploadFile(
    localPath: string,
    path: string,
    options: RemoteFileOptions = {},
  ): Promise<void> {
    const mode = options.mode ?? 0o644;
    const sftp = await this.sftp();
    const staging = options.sudo ? `/tmp/.klab-upload-${randomBytes(6).toString('hex')}` : path;
    try {
      await new Promise<void>((resolve, reject) => {
        sftp.fastPut(localPath, staging, { mode }, (error) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw new KlabError(
        'KLAB_SSH_FAILED',
        `cannot copy ${localPath} to ${path} on ${this.name}: ${(error as Error).message}`,
        { vm: this.name, cause: error },
      );
    }
    if (options.sudo) {
      await this.run(['mv', '-f', staging, path], { sudo: true });
      await this.run(['chown', 'root:root', path], { sudo: true });
    }
    await this.run(['chmod', mode.toString(8), path], { sudo: options.sudo ?? false });
  }

  async downloadFile(path: string, localPath: string): Promise<void> {
    const sftp = await this.sftp();
    try {
      await new Promise<void>((resolve, reject) => {
        sftp.fastGet(path, localPath, (error) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw new KlabError(
        'KLAB_SSH_FAILED',
        `cannot copy ${path} from ${this.name} to ${localPath}: ${(error as Error).message}`,
        { vm: this.name, cause: error },
      );
    }
  }

  async readFile(path: string, options: { sudo?: boolean } = {}): Promise<string> {
    // Quiet: a file's contents (a kubeconfig, a key) never go to the run's log.
    const result = await this.run(['cat', '--', path], {
      sudo: options.sudo ?? false,
      quiet: true,
    });
    return result.stdout;
  }

  async close(): Promise<void> {
    this.client.end();
  }
}
