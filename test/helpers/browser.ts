/** Debian's Chromium driven by playwright-core (no browser download), and `klab ui` as a learner starts it. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.KLAB_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's chromium (scripts/setup-host does)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

const CLI = path.resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

export interface UiProcess {
  url: string;
  pid: number;
  /** Resident memory of the server process, in MiB. */
  rssMiB(): Promise<number>;
  /** Ctrl-C, as a learner stops it; resolves with the exit code and the output. */
  stop(): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

/** `klab ui --port 0` on a lab; resolves once it printed its URL. */
export async function startUi(dir: string, cli = CLI): Promise<UiProcess> {
  const child: ResultPromise = execa('node', [cli, '--dir', dir, 'ui', '--port', '0'], {
    reject: false,
    env: { CI: 'true' },
    stdin: 'ignore',
    buffer: true,
  });
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`klab ui printed no URL:\n${stdout}`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const found = /http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+/.exec(stdout);
      if (found) {
        clearTimeout(timer);
        resolve(found[0]);
      }
    });
    void child.then((result) => {
      clearTimeout(timer);
      reject(new Error(`klab ui exited ${result.exitCode}:\n${String(result.stderr)}`));
    });
  });
  const pid = child.pid ?? 0;
  return {
    url,
    pid,
    async rssMiB() {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    },
    async stop() {
      child.kill('SIGINT');
      const result = await child;
      return {
        exitCode: result.exitCode ?? 1,
        stdout: String(result.stdout),
        stderr: String(result.stderr),
      };
    },
  };
}
