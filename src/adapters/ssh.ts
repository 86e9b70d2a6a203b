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
  RootFile,
} from '../model/remote.js';
import { commandLine } from '../model/shell.js';

const { Client } = ssh2;
type Ssh2Client = InstanceType<typeof Client>;
type Sftp = Parameters<Parameters<Ssh2Client['sftp']>[0]>[1];

/**
 * The root half of writeFilesAsRoot: for each (upload, path, mode, owner) its directory,
 * then cp into place (cp writes in place, so a bind-mounted /etc/hosts in a container
 * works too), its mode and owner. No process but these per file.
 */
const PUT_AS_ROOT = [
  'set -e',
  'prefix=$1; shift',
  'trap \'rm -f "$prefix"*\' EXIT',
  'while [ $# -ge 4 ]; do',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  '  case $2 in */*) mkdir -p "${2%/*}" ;; esac',
  '  cp --no-preserve=mode,ownership "$1" "$2"',
  '  chmod "$3" "$2"',
  '  chown "$4" "$2"',
  '  shift 4',
  'done',
].join('\n');

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

/** ChaCha20 first; then ssh2's usual choices, for an sshd that lacks it. */
const CIPHERS: ssh2.CipherAlgorithm[] = [
  'chacha20-poly1305@openssh.com',
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
];

/** The cipher each connection agreed on (client to server), for tests and diagnosis. */
const negotiatedCipher = new WeakMap<Ssh2Client, string>();

function connectOnce(target: SshTarget): Promise<Ssh2Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .on('handshake', (negotiated) => negotiatedCipher.set(client, negotiated.cs.cipher))
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
        // ssh2 picks AES-GCM first when the host has AES instructions, but a guest under
        // software emulation (qemu64) has none: sshd there decrypts AES in plain code,
        // ChaCha20 about twice as fast (50 MB in 2.9 s against 5.6 s, measured in a lab VM).
        // With KVM both are fast, so ChaCha20 first costs nothing there.
        algorithms: { cipher: CIPHERS },
      });
  });
}

/** Dials until a connection is up or timeoutMs have passed (a VM still booting). */
async function dial(target: SshTarget, timeoutMs: number, clock: Clock): Promise<Ssh2Client> {
  const deadline = clock.now() + timeoutMs;
  let lastError: unknown;
  let delay = 500;
  for (;;) {
    try {
      return await connectOnce(target);
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

/** How long a lost connection is dialled again before a command gives up. */
const REDIAL_MS = 180_000;

export async function connectSsh(target: SshTarget, options: SshConnectOptions): Promise<SshHost> {
  const clock = options.clock ?? systemClock;
  const client = await dial(target, options.timeoutMs, clock);
  return new SshHost(target.name, client, options.onLine, () =>
    dial(target, Math.min(options.timeoutMs, REDIAL_MS), clock),
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

/** ssh2 throws this (synchronously) from exec/sftp on a connection that has closed. */
function notConnected(error: unknown): boolean {
  return error instanceof Error && /not connected/i.test(error.message);
}

/**
 * sshd refused to open a session channel: nothing ran. OpenSSH answers "open failed" (reason
 * CONNECT_FAILED) when MaxSessions is reached, and it frees a closed session only after it has
 * read every packet that came with the close: a new channel that follows closely on several
 * finished ones is counted with them. A moment later it opens. Only an unknown channel type
 * (reason 3) will never open.
 */
function openRefused(error: unknown): boolean {
  const reason = (error as { reason?: unknown } | undefined)?.reason;
  return error instanceof Error && typeof reason === 'number' && reason !== 3;
}

/** How often, and after what pauses, a refused channel is asked for again (6.3 s in all). */
export const CHANNEL_RETRY_DELAYS_MS = [100, 200, 400, 800, 1600, 3200];

/** Asks again, after a pause, while sshd refuses the channel; any other outcome is final. */
async function retryRefusedOpen<T>(open: () => Promise<T>): Promise<T> {
  for (const delay of CHANNEL_RETRY_DELAYS_MS) {
    try {
      return await open();
    } catch (error) {
      if (!openRefused(error) && !openRefused((error as { cause?: unknown }).cause)) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return open();
}

/**
 * Commands that run at once on one VM; the rest wait their turn. sshd's MaxSessions (10 by
 * default) caps the channels of a connection, the SFTP session takes one: beyond that a
 * channel is refused ("open failed"), which would read as a broken VM.
 */
export const MAX_COMMANDS_PER_VM = 8;

export class SshHost implements RemoteHost {
  private sftpSession: Promise<Sftp> | undefined;
  private client: Ssh2Client;
  /** The connection closed without close() (the guest starved or paused for minutes, sshd restarted). */
  private lost = false;
  private closed = false;
  private redialling: Promise<Ssh2Client> | undefined;

  constructor(
    readonly name: string,
    client: Ssh2Client,
    private readonly onLine?: (line: string) => void,
    /** Opens a new connection to the same VM; without it a lost connection stays lost. */
    private readonly redial?: () => Promise<Ssh2Client>,
  ) {
    this.client = client;
    this.watch(client);
  }

  /** The cipher the current connection agreed on with the VM's sshd. */
  get cipher(): string | undefined {
    return negotiatedCipher.get(this.client);
  }

  private watch(client: Ssh2Client): void {
    client.on('close', () => {
      if (client === this.client) this.lost = true;
    });
  }

  /** The connection, dialled again first if it was lost: the next command works once the VM answers. */
  private live(): Promise<Ssh2Client> {
    if (!this.lost) return Promise.resolve(this.client);
    const redial = this.redial;
    if (this.closed || !redial) {
      return Promise.reject(
        new KlabError('KLAB_SSH_FAILED', `the SSH connection to ${this.name} is closed`, {
          vm: this.name,
        }),
      );
    }
    this.redialling ??= (async () => {
      this.onLine?.(
        `[klab] the SSH connection to ${this.name} was lost (a starved or paused VM?); connecting again`,
      );
      const client = await redial();
      this.client = client;
      this.sftpSession = undefined;
      this.lost = false;
      this.watch(client);
      return client;
    })().finally(() => {
      this.redialling = undefined;
    });
    return this.redialling;
  }

  async run(argv: readonly string[], options: RemoteRunOptions = {}): Promise<RemoteResult> {
    const release = await this.sessionSlot();
    const attempt = () => retryRefusedOpen(async () => this.exec(await this.live(), argv, options));
    try {
      return await attempt();
    } catch (error) {
      // Closed between our last look and the exec: dial again, once.
      if (!notConnected(error) || !this.redial || this.closed) throw this.wrapped(error, argv);
      this.lost = true;
      return await attempt().catch((again) => {
        throw this.wrapped(again, argv);
      });
    } finally {
      release();
    }
  }

  private running = 0;
  private readonly queued: (() => void)[] = [];

  /**
   * One of MAX_COMMANDS_PER_VM places; the command waits for one when all are taken.
   * sshd refuses more than MaxSessions (10) channels on one connection, and SFTP holds one.
   */
  private async sessionSlot(): Promise<() => void> {
    if (this.running < MAX_COMMANDS_PER_VM) this.running += 1;
    else await new Promise<void>((resolve) => this.queued.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queued.shift();
      if (next) next();
      else this.running -= 1;
    };
  }

  private wrapped(error: unknown, argv: readonly string[]): unknown {
    if (error instanceof KlabError) return error;
    return new KlabError(
      'KLAB_SSH_FAILED',
      `SSH exec on ${this.name} failed: ${(error as Error).message}`,
      { vm: this.name, command: argv, cause: error },
    );
  }

  private exec(
    client: Ssh2Client,
    argv: readonly string[],
    options: RemoteRunOptions,
  ): Promise<RemoteResult> {
    const line = commandLine(argv, { sudo: options.sudo ?? false, env: options.env ?? {} });
    return new Promise((resolve, reject) => {
      const started = (error: Error | undefined, stream: ssh2.ClientChannel) => {
        if (error) {
          reject(
            new KlabError('KLAB_SSH_FAILED', `SSH exec on ${this.name} failed: ${error.message}`, {
              vm: this.name,
              command: argv,
              cause: error,
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
      };
      try {
        client.exec(line, started);
      } catch (error) {
        reject(error);
      }
    });
  }

  private async sftp(): Promise<Sftp> {
    const client = await this.live();
    this.sftpSession ??= retryRefusedOpen(
      () =>
        new Promise<Sftp>((resolve, reject) => {
          try {
            client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp)));
          } catch (error) {
            reject(error);
          }
        }),
    );
    const session = this.sftpSession;
    // A failed session is not kept: the next call opens one again.
    session.catch(() => {
      if (this.sftpSession === session) this.sftpSession = undefined;
    });
    return session;
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

  async writeFilesAsRoot(files: readonly RootFile[]): Promise<void> {
    if (files.length === 0) return;
    // Uploads go to /tmp as the login user (0600), named by one prefix; the root command
    // moves them into place and removes what is left of them.
    const staging = `/tmp/.klab-upload-${randomBytes(6).toString('hex')}`;
    const args = files.flatMap((file, i) => [
      `${staging}-${i}`,
      file.path,
      file.mode.toString(8),
      file.owner ?? 'root:root',
    ]);
    try {
      // One SFTP session carries the uploads side by side (its requests are pipelined).
      await Promise.all(
        files.map((file, i) => this.upload(`${staging}-${i}`, file.content, 0o600)),
      );
      await this.run(['sh', '-c', PUT_AS_ROOT, 'klab-put', `${staging}-`, ...args], {
        sudo: true,
      });
    } catch (error) {
      await this.run(['sh', '-c', `rm -f ${staging}-*`], { allowFailure: true, quiet: true }).catch(
        () => {},
      );
      if (error instanceof KlabError) throw error;
      throw new KlabError(
        'KLAB_SSH_FAILED',
        `cannot write ${files.map((file) => file.path).join(', ')} on ${this.name}: ${(error as Error).message}`,
        { vm: this.name, cause: error },
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
    this.closed = true;
    this.client.end();
  }
}
