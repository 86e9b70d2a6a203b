/**
 * Renders core events: spinners on a terminal, plain "- / ok / FAIL" lines otherwise
 * (CI, pipes, --quiet). With --verbose, VM and tool output is streamed, prefixed with
 * its source. Every event also goes to the run's log file, verbose or not.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import ora, { type Ora } from 'ora';
import type { EventCode, EventSink, KlabEvent, ResultData } from '../model/events.js';

export interface ReporterOptions {
  tty: boolean;
  verbose: boolean;
  quiet: boolean;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** --json: stdout gets one JSON document at the end (see writeJson), nothing else. */
  json?: boolean;
}

/** What --json lists of a run: every step, check and task that ended, every notice. */
export interface EventRecord {
  code: EventCode;
  subject?: string | undefined;
  title?: string;
  ok?: boolean;
  ms?: number;
  detail?: string | undefined;
  level?: 'info' | 'warn';
  text?: string;
}

/** The failure part of a --json document. */
export interface JsonError {
  code: string;
  message: string;
  details: readonly string[];
  hint: string | undefined;
  vm: string | undefined;
  data: Record<string, unknown> | undefined;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export class Reporter implements EventSink {
  private logFile: string | undefined;
  private readonly pending: string[] = [];
  private spinner: Ora | undefined;
  private readonly active = new Map<string, string>();
  private readonly records: EventRecord[] = [];
  private answer: { code: EventCode; text: string; data?: ResultData | undefined } | undefined;

  constructor(private readonly options: ReporterOptions) {}

  /** Start writing the log; lines emitted before this are written first. */
  setLogFile(file: string): void {
    mkdirSync(path.dirname(file), { recursive: true });
    this.logFile = file;
    appendFileSync(file, this.pending.join(''));
    this.pending.length = 0;
  }

  get logPath(): string | undefined {
    return this.logFile;
  }

  log(text: string): void {
    const line = `${new Date().toISOString()} ${text}\n`;
    if (this.logFile) appendFileSync(this.logFile, line);
    else this.pending.push(line);
  }

  emit(event: KlabEvent): void {
    this.log(describe(event));
    const { quiet, verbose, tty } = this.options;
    if (event.kind === 'task-end') {
      const { code, subject, title, ok, ms, detail } = event;
      this.records.push({ code, subject, title, ok, ms, detail });
    } else if (event.kind === 'notice') {
      this.records.push({ code: event.code, level: event.level, text: event.text });
    }
    switch (event.kind) {
      case 'result':
        if (this.options.json) {
          this.answer = { code: event.code, text: event.text, data: event.data };
          return;
        }
        this.pause();
        this.options.stdout.write(`${event.text}\n`);
        this.resume();
        return;
      case 'notice':
        if (quiet && event.level === 'info') return;
        this.pause();
        this.options.stderr.write(`${event.level === 'warn' ? '!' : 'i'} ${event.text}\n`);
        this.resume();
        return;
      case 'output':
        if (!verbose) return;
        this.pause();
        this.options.stderr.write(`[${event.source}] ${event.line}\n`);
        this.resume();
        return;
      case 'task-start':
        this.active.set(event.id, event.title);
        if (quiet) return;
        if (tty) this.showSpinner(event.title);
        else this.options.stderr.write(` - ${event.title}\n`);
        return;
      case 'task-update': {
        if (quiet) return;
        const title = this.active.get(event.id) ?? '';
        if (tty && this.spinner) this.spinner.text = `${title}: ${event.text}`;
        else if (!tty) this.options.stderr.write(`   ${title}: ${event.text}\n`);
        return;
      }
      case 'task-end': {
        this.active.delete(event.id);
        const detail = event.detail ? `, ${event.detail}` : '';
        const line = `${event.title} (${seconds(event.ms)}${detail})`;
        if (quiet && event.ok) return;
        if (tty) {
          this.stopSpinner(event.ok ? '✔' : '✖', line);
          const previous = [...this.active.values()].pop();
          if (previous) this.showSpinner(previous);
        } else {
          this.options.stderr.write(`${event.ok ? 'ok' : 'FAIL'} ${line}\n`);
        }
        return;
      }
    }
  }

  private showSpinner(text: string): void {
    this.spinner?.stop();
    this.spinner = ora({ text, stream: this.options.stderr as NodeJS.WriteStream }).start();
  }

  private stopSpinner(symbol: string, text: string): void {
    if (this.spinner) this.spinner.stopAndPersist({ symbol, text });
    else this.options.stderr.write(`${symbol} ${text}\n`);
    this.spinner = undefined;
  }

  private paused: string | undefined;

  private pause(): void {
    if (this.spinner) {
      this.paused = this.spinner.text;
      this.spinner.stop();
      this.spinner = undefined;
    }
  }

  private resume(): void {
    if (this.paused !== undefined) {
      const text = this.paused;
      this.paused = undefined;
      this.showSpinner(text);
    }
  }

  /**
   * --json: the run as one document on stdout (docs/json-output.md): the answer's data
   * (kind, items, ...), its code, the error when it failed, and every event that ended.
   */
  writeJson(command: string, error?: JsonError, exitCode = 0): void {
    if (!this.options.json) return;
    const data = { ...(this.answer?.data ?? {}), ...(error?.data ?? {}) };
    const { kind, ...rest } = data as { kind?: string };
    const document = {
      apiVersion: 'klab/v1',
      kind: kind ?? (error ? 'Error' : 'Result'),
      command,
      ok: !error && exitCode === 0,
      code: error ? error.code : (this.answer?.code ?? 'TASK_DONE'),
      message: error ? error.message : (this.answer?.text ?? ''),
      ...rest,
      ...(error
        ? {
            error: {
              code: error.code,
              message: error.message,
              details: error.details,
              ...(error.hint ? { hint: error.hint } : {}),
              ...(error.vm ? { vm: error.vm } : {}),
            },
          }
        : {}),
      events: this.records,
    };
    this.options.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }

  close(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }
}

function describe(event: KlabEvent): string {
  switch (event.kind) {
    case 'task-start':
      return `start ${event.title}`;
    case 'task-update':
      return `  ... ${event.text}`;
    case 'task-end':
      return `${event.ok ? 'ok' : 'FAIL'} ${event.title} (${event.ms} ms)${event.detail ? ` ${event.detail}` : ''}`;
    case 'notice':
      return `${event.level.toUpperCase()} ${event.text}`;
    case 'output':
      return `[${event.source}] ${event.line}`;
    case 'result':
      return `result ${event.text}`;
  }
}
