/**
 * Vagrant, for VM lifecycle only (no `vagrant ssh -c`: klab keeps one SSH connection per VM).
 * Output is read with --machine-readable and `ssh-config`, never screen-scraped.
 */
import { KlabError, tail } from '../model/errors.js';
import type { BoxEntry, Machines, SshConfig } from '../model/ports.js';
import { type ProcessResult, runProcess } from './process.js';

export type { BoxEntry, SshConfig } from '../model/ports.js';

export interface MachineReadableRow {
  timestamp: number;
  target: string;
  type: string;
  data: string[];
}

export function parseMachineReadable(text: string): MachineReadableRow[] {
  const rows: MachineReadableRow[] = [];
  for (const line of text.split('\n')) {
    if (!/^\d+,/.test(line)) continue;
    const fields = line.split(',');
    const [timestamp, target, type, ...data] = fields;
    if (timestamp === undefined || target === undefined || type === undefined) continue;
    rows.push({
      timestamp: Number(timestamp),
      target,
      type,
      data: data.map((field) =>
        field.replaceAll('%!(VAGRANT_COMMA)', ',').replaceAll('\\n', '\n').replaceAll('\\r', ''),
      ),
    });
  }
  return rows;
}

/** VM name -> state (running, shutoff, not_created, paused, ...). */
export function parseStatus(text: string): Map<string, string> {
  const states = new Map<string, string>();
  for (const row of parseMachineReadable(text)) {
    if (row.type === 'state' && row.target !== '' && row.data[0] !== undefined) {
      states.set(row.target, row.data[0]);
    }
  }
  return states;
}

export function parseSshConfig(text: string): SshConfig[] {
  const configs: SshConfig[] = [];
  let current: Partial<SshConfig> | undefined;
  const finish = () => {
    if (current?.host && current.hostName && current.user && current.identityFile) {
      configs.push({
        host: current.host,
        hostName: current.hostName,
        user: current.user,
        port: current.port ?? 22,
        identityFile: current.identityFile,
      });
    }
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const match = /^(\S+)\s+(.*)$/.exec(line);
    if (!match?.[1] || match[2] === undefined) continue;
    const key = match[1].toLowerCase();
    const value = match[2].replace(/^"(.*)"$/, '$1');
    if (key === 'host') {
      finish();
      current = { host: value };
    } else if (current) {
      if (key === 'hostname') current.hostName = value;
      else if (key === 'user') current.user = value;
      else if (key === 'port') current.port = Number(value);
      else if (key === 'identityfile' && !current.identityFile) current.identityFile = value;
    }
  }
  finish();
  return configs;
}

export function parseBoxList(text: string): BoxEntry[] {
  const boxes: BoxEntry[] = [];
  let current: Partial<BoxEntry> = {};
  for (const row of parseMachineReadable(text)) {
    const value = row.data[0] ?? '';
    if (row.type === 'box-name') current = { name: value };
    else if (row.type === 'box-provider') current.provider = value;
    else if (row.type === 'box-version') {
      current.version = value;
      if (current.name && current.provider) {
        boxes.push({ name: current.name, provider: current.provider, version: value });
      }
    }
  }
  return boxes;
}

export interface VagrantOptions {
  onLine?: (line: string) => void;
  /** Override the vagrant executable (tests use a fake on PATH instead). */
  executable?: string;
}

const PROGRESS = /^Progress: \d+%/;

/** The Machines port over the vagrant CLI (vagrant-libvirt), in one lab directory. */
export class Vagrant implements Machines {
  constructor(
    readonly labDir: string,
    private readonly options: VagrantOptions = {},
  ) {}

  private async run(
    args: readonly string[],
    opts: { timeoutMs?: number; quiet?: boolean; vm?: string } = {},
  ): Promise<ProcessResult> {
    const argv = [this.options.executable ?? 'vagrant', ...args];
    let lastProgress = -10;
    const result = await runProcess(argv, {
      cwd: this.labDir,
      env: {
        VAGRANT_CHECKPOINT_DISABLE: '1',
        VAGRANT_BOX_UPDATE_CHECK_DISABLE: '1',
        VAGRANT_NO_COLOR: '1',
        VAGRANT_DEFAULT_PROVIDER: 'libvirt',
      },
      timeoutMs: opts.timeoutMs,
      onLine: opts.quiet
        ? undefined
        : (line) => {
            // Box uploads redraw "Progress: N%" hundreds of times; keep every 10%.
            const progress = PROGRESS.exec(line);
            if (progress) {
              const pct = Number(line.replace(/\D+/g, ' ').trim().split(' ')[0]);
              if (pct < lastProgress + 10 && pct !== 100) return;
              lastProgress = pct;
            }
            this.options.onLine?.(line);
          },
    });
    if (result.notFound) {
      throw new KlabError('KLAB_TOOL_MISSING', 'vagrant is not installed', {
        hint: 'Install it: sudo apt-get install vagrant vagrant-libvirt (or run "klab doctor").',
      });
    }
    return result;
  }

  private async mustRun(
    args: readonly string[],
    what: string,
    opts: { timeoutMs?: number; quiet?: boolean; vm?: string; hint?: string } = {},
  ): Promise<ProcessResult> {
    const result = await this.run(args, opts);
    if (result.exitCode !== 0 || result.timedOut) {
      throw new KlabError(
        result.timedOut ? 'KLAB_TIMEOUT' : 'KLAB_VAGRANT_FAILED',
        `${what} ${result.timedOut ? 'timed out' : `failed (exit ${result.exitCode})`}`,
        {
          vm: opts.vm,
          command: ['vagrant', ...args],
          outputTail: tail(`${result.stdout}\n${result.stderr}`),
          hint: opts.hint,
        },
      );
    }
    return result;
  }

  async status(): Promise<Map<string, string>> {
    const result = await this.mustRun(['status', '--machine-readable'], 'vagrant status', {
      quiet: true,
    });
    return parseStatus(result.stdout);
  }

  async sshConfig(vm: string): Promise<SshConfig> {
    const result = await this.run(['ssh-config', vm], { quiet: true });
    const config = parseSshConfig(result.stdout)[0];
    if (result.exitCode !== 0 || !config) {
      throw new KlabError('KLAB_VM_NOT_RUNNING', `cannot reach ${vm}: it is not running`, {
        vm,
        outputTail: tail(result.stderr, 5),
        hint: 'Start the lab with "klab up" (or "klab create" if it was never created).',
      });
    }
    return config;
  }

  async up(vms: readonly string[], parallel: boolean, timeoutMs: number): Promise<void> {
    const args = ['up', '--provider=libvirt', parallel ? '--parallel' : '--no-parallel', ...vms];
    await this.mustRun(args, `vagrant up ${vms.join(' ')}`, {
      timeoutMs,
      hint:
        'Look at the console log of the VM (.klab/logs/<vm>-console.log) and the full log; ' +
        'run "klab doctor" for host problems. Re-running "klab create" resumes.',
    });
  }

  async halt(vms: readonly string[] = []): Promise<void> {
    await this.mustRun(['halt', ...vms], 'vagrant halt');
  }

  async destroy(vms: readonly string[] = []): Promise<void> {
    await this.mustRun(['destroy', '--force', ...vms], `vagrant destroy ${vms.join(' ')}`.trim());
  }

  async boxList(): Promise<BoxEntry[]> {
    const result = await this.mustRun(['box', 'list', '--machine-readable'], 'vagrant box list', {
      quiet: true,
    });
    return parseBoxList(result.stdout);
  }

  /**
   * Add a box from a file, a box metadata file (.json: the name and version are in it) or a
   * Vagrant Cloud name. Returns the failure instead of throwing.
   */
  async boxAdd(name: string, source: string, timeoutMs: number): Promise<ProcessResult> {
    return this.run(boxAddArgs(name, source), { timeoutMs });
  }
}

/** `vagrant box add`'s arguments for a Vagrant Cloud name, a metadata file or a box file. */
export function boxAddArgs(name: string, source: string): string[] {
  if (source === name) return ['box', 'add', name, '--provider', 'libvirt'];
  if (source.endsWith('.json')) return ['box', 'add', '--force', '--provider', 'libvirt', source];
  return ['box', 'add', '--force', '--name', name, source];
}
