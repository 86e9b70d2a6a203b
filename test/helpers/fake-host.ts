import { KlabError } from '../../src/model/errors.js';
import type {
  RemoteFileOptions,
  RemoteHost,
  RemoteResult,
  RemoteRunOptions,
  RootFile,
} from '../../src/model/remote.js';

export type Handler = (
  argv: readonly string[],
  options: RemoteRunOptions,
) => Partial<RemoteResult> | undefined;

/**
 * A recording RemoteHost for unit tests: files live in a Map, commands are answered by
 * a handler (cat of a known file is built in), every call is recorded.
 */
export class FakeHost implements RemoteHost {
  readonly calls: { argv: readonly string[]; sudo: boolean; stdinFile?: string }[] = [];
  readonly files = new Map<string, string>();
  readonly writes: { path: string; mode: number | undefined; sudo: boolean }[] = [];

  constructor(
    readonly name: string,
    private readonly handler: Handler = () => undefined,
  ) {}

  async run(argv: readonly string[], options: RemoteRunOptions = {}): Promise<RemoteResult> {
    this.calls.push({
      argv,
      sudo: options.sudo ?? false,
      ...(options.stdinFile ? { stdinFile: options.stdinFile } : {}),
    });
    let answer = this.handler(argv, options);
    if (!answer && argv[0] === 'cat') {
      const file = argv[argv.length - 1] ?? '';
      const content = this.files.get(file);
      answer =
        content === undefined ? { exitCode: 1, stderr: 'No such file' } : { stdout: content };
    }
    const result = { exitCode: 0, stdout: '', stderr: '', ...answer };
    if (result.exitCode !== 0 && !options.allowFailure) {
      throw new KlabError('KLAB_STEP_FAILED', `fake: ${argv.join(' ')} failed`, { vm: this.name });
    }
    return result;
  }

  async writeFile(
    path: string,
    content: string | Buffer,
    options: RemoteFileOptions = {},
  ): Promise<void> {
    this.files.set(path, content.toString());
    this.writes.push({ path, mode: options.mode, sudo: options.sudo ?? false });
  }

  /** Recorded like writeFile with sudo; a named owner also as the chown it implies. */
  async writeFilesAsRoot(files: readonly RootFile[]): Promise<void> {
    for (const file of files) {
      await this.writeFile(file.path, file.content, { sudo: true, mode: file.mode });
      if (file.owner) this.owners.set(file.path, file.owner);
    }
  }

  readonly owners = new Map<string, string>();

  readonly downloads: { path: string; localPath: string }[] = [];

  /** Writes the file's content from the files map (or nothing) to the local path. */
  async downloadFile(path: string, localPath: string): Promise<void> {
    this.downloads.push({ path, localPath });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(localPath, this.files.get(path) ?? '');
  }

  readonly uploads: { localPath: string; path: string }[] = [];

  async uploadFile(localPath: string, path: string): Promise<void> {
    this.uploads.push({ localPath, path });
  }

  async readFile(path: string): Promise<string> {
    return (await this.run(['cat', '--', path])).stdout;
  }

  async close(): Promise<void> {}

  commands(): string[] {
    return this.calls.map((call) => `${call.sudo ? 'sudo ' : ''}${call.argv.join(' ')}`);
  }
}
