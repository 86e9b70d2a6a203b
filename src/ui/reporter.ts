/**
 * Renders core events: spinners on a terminal, plain "- / ok / FAIL" lines otherwise
 * (CI, pipes, --quiet). With --verbose, VM and tool output is streamed, prefixed with
 * its source. Every event also goes to the run's log file, verbose or not.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import ora, { type Ora } from 'ora';
import type { EventSink, KlabEvent } from '../model/events.js';

export interface ReporterOptions {
  tty: boolean;
  verbose: boolean;
  quiet: boolean;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export class Reporter implements EventSink {
  private logFile: string | undefined;
  private readonly pending: string[] = [];
  private spinner: Ora | undefined;
  private readonly active = new Map<string, string>();

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
    switch (event.kind) {
      case 'result':
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
