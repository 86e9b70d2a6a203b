import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the built klab CLI as a user would (npm test builds it first). */
export async function klab(
  args: readonly string[],
  dir: string,
  timeoutMs = 3_600_000,
): Promise<CliResult> {
  const result = await execa('node', [CLI, '--dir', dir, ...args], {
    reject: false,
    timeout: timeoutMs,
    env: { CI: 'true' },
    stdin: 'ignore',
  });
  return {
    exitCode: result.exitCode ?? 1,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

/** Fail with the whole output when a command did not succeed. */
export function ok(result: CliResult): CliResult {
  if (result.exitCode !== 0) {
    throw new Error(
      `klab exited ${result.exitCode}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
  return result;
}

/** An event of a --json document (docs/json-output.md). */
export interface JsonEvent {
  code: string;
  subject?: string;
  ok?: boolean;
  ms?: number;
  detail?: string;
  level?: string;
}

/** A --json document: the answer's fields, its code, the error, the events. */
export interface JsonDocument {
  apiVersion: string;
  kind: string;
  command: string;
  ok: boolean;
  code: string;
  message: string;
  events: JsonEvent[];
  error?: { code: string; message: string; details: string[]; hint?: string; vm?: string };
  [field: string]: unknown;
}

export interface JsonResult {
  exitCode: number;
  doc: JsonDocument;
  stderr: string;
}

/** Run klab with --json and parse its one document (stdout holds nothing else). */
export async function klabJson(
  args: readonly string[],
  dir: string,
  timeoutMs = 3_600_000,
): Promise<JsonResult> {
  const result = await klab([...args, '--json'], dir, timeoutMs);
  let doc: JsonDocument;
  try {
    doc = JSON.parse(result.stdout) as JsonDocument;
  } catch {
    throw new Error(
      `klab ${args.join(' ')} --json printed no JSON document (exit ${result.exitCode})\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr.slice(-4000)}`,
    );
  }
  return { exitCode: result.exitCode, doc, stderr: result.stderr };
}

/** Fail with the document and stderr when the run did not succeed. */
export function okJson(result: JsonResult): JsonDocument {
  if (result.exitCode !== 0 || !result.doc.ok) {
    throw new Error(
      `klab exited ${result.exitCode}: ${result.doc.error?.code ?? ''} ${result.doc.error?.message ?? ''}\n--- stderr\n${result.stderr.slice(-4000)}`,
    );
  }
  return result.doc;
}

/** The codes of the events about one subject (a step id, a check id, an artifact). */
export function codesOf(doc: JsonDocument, subject: string): string[] {
  return doc.events.filter((event) => event.subject === subject).map((event) => event.code);
}

export function hasEvent(doc: JsonDocument, code: string): boolean {
  return doc.events.some((event) => event.code === code);
}
