/**
 * klab's entry point: yargs setup, logging, and the only place where errors become
 * exit codes and printed messages. Returns the exit code; never calls process.exit().
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import yargs from 'yargs';
import { acquireLabLock } from './app/lock.js';
import type { CommandIo, GlobalArgs, KlabCommand } from './commands/command.js';
import { COMMANDS } from './commands/index.js';
import { cachePath } from './model/cache-paths.js';
import { isKlabError, KlabError } from './model/errors.js';
import { interrupt } from './model/interrupt.js';
import { labPaths } from './model/lab-paths.js';
import { Reporter } from './ui/reporter.js';

export interface MainIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  isTty: boolean;
  /** Where SIGINT/SIGTERM arrive (the process; tests pass an emitter). */
  signals?: NodeJS.EventEmitter;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

function defaultIo(): MainIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    isTty: Boolean(process.stderr.isTTY) && process.env.CI !== 'true',
  };
}

function logFileFor(command: KlabCommand, name: string, dir: string): string | undefined {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = `${stamp}-${name}.log`;
  const paths = labPaths(dir);
  const isLab = existsSync(paths.specFile) || existsSync(paths.klabDir);
  if (command.logsInLab === 'always' || (command.logsInLab === 'if-lab' && isLab)) {
    return path.join(paths.logDir, file);
  }
  if (command.logsInLab === 'never' && name === 'ssh') return undefined;
  return cachePath('logs', file);
}

const COMMAND_NAMES = COMMANDS.map((command) => command.command.split(' ')[0] ?? command.command);
/** Global options that take a value: the word after them is not the command. */
const VALUE_OPTIONS = new Set(['--dir', '-C']);

/** The first word that is not an option (or an option's value): the command the user typed. */
export function firstPositional(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i += 1) {
    const word = argv[i] ?? '';
    if (word === '--') return undefined;
    if (VALUE_OPTIONS.has(word)) {
      i += 1;
      continue;
    }
    if (!word.startsWith('-')) return word;
  }
  return undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = row[j] ?? 0;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] ?? 0) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/** The closest name within two edits (typos such as "crate" or "snapshots"), if any. */
export function closest(word: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = editDistance(word, name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= 2 ? best.name : undefined;
}

export function formatError(error: KlabError, logPath: string | undefined): string {
  const lines = [`error[${error.code}]: ${error.message}`];
  for (const detail of error.details) lines.push(`  ${detail}`);
  if (error.vm) lines.push(`  on VM: ${error.vm}`);
  if (error.command) lines.push(`  command: ${error.command.join(' ')}`);
  if (error.outputTail) {
    lines.push('  last output:');
    for (const line of error.outputTail.split('\n')) lines.push(`    | ${line}`);
  }
  if (error.hint) lines.push(`hint: ${error.hint}`);
  if (logPath) lines.push(`full log: ${logPath}`);
  return lines.join('\n');
}

export async function main(argv: readonly string[], io: MainIo = defaultIo()): Promise<number> {
  let exitCode = 0;
  const wantsVerbose = argv.includes('--verbose') || argv.includes('-v');
  const wantsQuiet = argv.includes('--quiet') || argv.includes('-q');
  const wantsJson = argv.includes('--json');
  const commandName = firstPositional(argv) ?? '';
  const reporter = new Reporter({
    tty: io.isTty && !wantsQuiet,
    verbose: wantsVerbose,
    quiet: wantsQuiet,
    stdout: io.stdout,
    stderr: io.stderr,
    json: wantsJson,
  });
  const commandIo: CommandIo = {
    reporter,
    stdinIsTty: Boolean(io.stdin.isTTY),
    async confirm(question) {
      const rl = createInterface({ input: io.stdin, output: io.stderr });
      try {
        const answer = await rl.question(`${question} [y/N] `);
        return /^y(es)?$/i.test(answer.trim());
      } finally {
        rl.close();
      }
    },
  };

  const parser = yargs([...argv])
    .scriptName('klab')
    .usage(
      'klab: a Kubernetes-from-scratch learning lab on one Linux host\n\nUsage: $0 <command> [options]',
    )
    .parserConfiguration({ 'populate--': true })
    .option('dir', {
      alias: 'C',
      type: 'string',
      default: '.',
      describe: 'lab directory (holds klab.yaml, Vagrantfile and .klab/)',
      global: true,
    })
    .option('verbose', {
      alias: 'v',
      type: 'boolean',
      default: false,
      describe: 'stream VM and tool output',
      global: true,
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'print one JSON document on stdout (docs/json-output.md)',
      global: true,
    })
    .option('quiet', {
      alias: 'q',
      type: 'boolean',
      default: false,
      describe: 'only results, warnings and errors',
      global: true,
    })
    .strict()
    .demandCommand(1, 'Name a command; "klab --help" lists them.')
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, error) => {
      if (error) throw error;
      const word = firstPositional(argv);
      if (word !== undefined && !COMMAND_NAMES.includes(word)) {
        const near = closest(word, COMMAND_NAMES);
        throw new KlabError('KLAB_USAGE', `unknown command "${word}"`, {
          hint: `${near ? `Did you mean "klab ${near}"? ` : ''}"klab --help" lists the commands.`,
        });
      }
      throw new KlabError('KLAB_USAGE', message, {
        hint: 'See "klab --help" or "klab <command> --help".',
      });
    })
    .epilogue(
      'Docs: README.md, docs/architecture.md, docs/troubleshooting.md (one entry per error code).',
    )
    .wrap(Math.min(110, (io.stdout as NodeJS.WriteStream).columns ?? 100));

  for (const command of COMMANDS) {
    const name = command.command.split(' ')[0] ?? command.command;
    parser.command(command.command, command.describe, command.builder, async (args) => {
      const globals = args as unknown as GlobalArgs & Record<string, unknown>;
      const logFile = logFileFor(command, name, globals.dir);
      if (logFile) reporter.setLogFile(logFile);
      reporter.log(`klab ${argv.join(' ')}`);
      const writes = command.writesLab?.(globals) ?? false;
      const klabDir = labPaths(globals.dir).klabDir;
      // Where there is no lab, only a command that makes one needs the lock.
      const lock =
        writes === 'new-lab' || (writes === 'lab' && existsSync(klabDir))
          ? acquireLabLock(klabDir, `klab ${argv.join(' ')}`, reporter)
          : undefined;
      // First Ctrl-C: stop at the next safe point. Second: stop now (the default action).
      const signals = io.signals ?? process;
      const onSignal = (signal: string) => {
        if (interrupt.requested) {
          for (const name of STOP_SIGNALS) signals.removeListener(name, onSignal);
          reporter.close();
          lock?.release();
          if (signals === process) process.kill(process.pid, signal);
          return;
        }
        interrupt.request(signal);
        reporter.emit({
          kind: 'notice',
          code: 'INTERRUPT_REQUESTED',
          level: 'warn',
          text: `${signal}: ${command.onInterrupt ?? 'stopping at the next safe point, leaving the lab resumable (press Ctrl-C again to stop at once).'}`,
        });
      };
      for (const name of STOP_SIGNALS) signals.on(name, onSignal);
      try {
        exitCode = await command.run(globals, commandIo);
      } finally {
        for (const name of STOP_SIGNALS) signals.removeListener(name, onSignal);
        interrupt.reset();
        lock?.release();
      }
    });
  }

  try {
    // With a callback, yargs hands over --help/--version text instead of printing it.
    let output = '';
    await parser.parseAsync([...argv], {}, (_error, _args, text) => {
      output = text;
    });
    if (output) io.stdout.write(`${output}\n`);
    else reporter.writeJson(commandName, undefined, exitCode);
  } catch (error) {
    reporter.close();
    if (isKlabError(error)) {
      reporter.log(
        `error ${error.code}: ${error.message}\n${error.details.join('\n')}\n${error.outputTail ?? ''}`,
      );
      io.stderr.write(`${formatError(error, reporter.logPath)}\n`);
      reporter.writeJson(commandName, error);
      exitCode = error.exitCode;
    } else {
      const err = error instanceof Error ? error : new Error(String(error));
      reporter.log(`internal error: ${err.stack ?? err.message}`);
      io.stderr.write(
        `error[KLAB_INTERNAL]: ${err.message}\n${err.stack ?? ''}\n` +
          `This is a bug in klab; please report it with the log${reporter.logPath ? `: ${reporter.logPath}` : '.'}\n`,
      );
      exitCode = 1;
    }
  } finally {
    reporter.close();
  }
  return exitCode;
}
