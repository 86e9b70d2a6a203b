/** Reading klab.yaml: YAML syntax, then the schema, every problem reported at once. */
import { lstat, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { KlabError } from './errors.js';
import { type LabSpec, labNameFromDir, planLab, SpecSchema } from './spec.js';

export const SPEC_FILE = 'klab.yaml';

export interface SpecOverrides {
  box?: string | undefined;
  stack?: string | undefined;
}

/** `nodes[2].memory` from a zod path. */
export function formatPath(issuePath: readonly PropertyKey[]): string {
  let out = '';
  for (const part of issuePath) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out.length === 0 ? String(part) : `.${String(part)}`;
  }
  return out.length > 0 ? out : '(top level)';
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        lines.push(`${formatPath([...issue.path, key])}: unknown setting`);
      }
      continue;
    }
    lines.push(`${formatPath(issue.path)}: ${issue.message}`);
  }
  return lines;
}

/** Validate an already-parsed document (object) and plan the lab. */
export function validateSpec(document: unknown, defaultName: string, source: string): LabSpec {
  const input = document ?? {};
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new KlabError('KLAB_SPEC_INVALID', `${source} must be a mapping of settings`, {
      hint: `Run "klab init" in an empty directory to see a commented example.`,
    });
  }
  const result = SpecSchema.safeParse(input);
  if (!result.success) {
    const details = formatIssues(result.error.issues);
    throw new KlabError(
      'KLAB_SPEC_INVALID',
      `${source} has ${details.length} problem${details.length === 1 ? '' : 's'}`,
      {
        details: capDetails(details),
        hint: `Fix ${source}; nothing was changed. "klab init" shows every setting.`,
      },
    );
  }
  return planLab(result.data, defaultName);
}

/** A klab.yaml is a few KB; anything near this is not one (and would only be slow to parse). */
export const MAX_SPEC_BYTES = 256 * 1024;
const MAX_DETAILS = 25;
const MAX_DETAIL_CHARS = 200;

function clip(text: string): string {
  const line = text.split('\n')[0] ?? text;
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS)}...` : line;
}

/** At most 25 findings of at most one 200-character line each: junk input stays readable. */
function capDetails(details: readonly string[]): string[] {
  const shown = details.slice(0, MAX_DETAILS).map(clip);
  if (details.length > MAX_DETAILS) shown.push(`... and ${details.length - MAX_DETAILS} more`);
  return shown;
}

function parseError(source: string, message: string, details: string[] = []): KlabError {
  return new KlabError('KLAB_SPEC_PARSE', `${source} ${message}`, {
    details: capDetails(details),
    hint: `Fix ${source}; nothing was changed. "klab init" in an empty directory shows a commented example.`,
  });
}

/** YAML text -> plain data, or KLAB_SPEC_PARSE (syntax errors, alias bombs, binary junk). */
function parseYaml(text: string, source: string): unknown {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for binary content on purpose
  if (/[\u0000-\u0008\u000e-\u001f]/.test(text) || text.includes('\ufffd')) {
    throw parseError(source, 'is not a text file (it holds binary data)');
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw parseError(
      source,
      'is not valid YAML',
      doc.errors.map((error) => error.message),
    );
  }
  try {
    // The yaml library refuses documents whose aliases expand explosively ("billion laughs").
    return doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw parseError(source, 'cannot be read as YAML', [(error as Error).message]);
  }
}

export function parseSpecText(text: string, defaultName: string, source: string): LabSpec {
  return validateSpec(parseYaml(text, source), defaultName, source);
}

/** The lab directory must be a directory (or not exist yet). */
async function checkLabDir(labDir: string): Promise<void> {
  const info = await stat(labDir).catch(() => undefined);
  if (info && !info.isDirectory()) {
    throw new KlabError('KLAB_USAGE', `${labDir} is a file, not a lab directory`, {
      hint: 'Point --dir at a directory (klab creates it if it does not exist).',
    });
  }
}

/** klab.yaml's text, undefined when there is none; every other problem is KLAB_SPEC_PARSE. */
async function readSpecFile(file: string): Promise<string | undefined> {
  const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      // A dangling symlink is not "no klab.yaml": the user meant one.
      return undefined;
    }
    if (error.code === 'ELOOP') throw parseError(file, 'is a symbolic link loop');
    if (error.code === 'EACCES') throw parseError(file, 'cannot be read: permission denied');
    throw parseError(file, `cannot be read (${error.code ?? error.message})`);
  });
  if (!info) {
    const link = await lstat(file).catch(() => undefined);
    if (link?.isSymbolicLink()) throw parseError(file, 'is a symbolic link to nothing');
    return undefined;
  }
  if (info.isDirectory()) throw parseError(file, 'is a directory, not a file');
  if (!info.isFile()) throw parseError(file, 'is not a regular file');
  if (info.size > MAX_SPEC_BYTES) {
    throw parseError(
      file,
      `is ${info.size} bytes; a klab.yaml is a few KB (at most ${MAX_SPEC_BYTES} bytes are read)`,
    );
  }
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw parseError(file, 'cannot be read: permission denied');
    throw parseError(file, `cannot be read (${code ?? (error as Error).message})`);
  }
}

/** Load the lab's spec: klab.yaml if present, else the defaults; flags override both. */
export async function loadSpec(labDir: string, overrides: SpecOverrides = {}): Promise<LabSpec> {
  await checkLabDir(labDir);
  const file = path.join(labDir, SPEC_FILE);
  const defaultName = labNameFromDir(path.basename(path.resolve(labDir)));
  const text = await readSpecFile(file);
  let document: Record<string, unknown> = {};
  if (text !== undefined) {
    const js = parseYaml(text, file);
    if (js !== null && js !== undefined && (typeof js !== 'object' || Array.isArray(js))) {
      return validateSpec(js, defaultName, file);
    }
    document = (js ?? {}) as Record<string, unknown>;
  }
  if (overrides.box !== undefined) document = { ...document, box: overrides.box };
  if (overrides.stack !== undefined) document = { ...document, stack: overrides.stack };
  return validateSpec(document, defaultName, text === undefined ? 'the default lab' : file);
}
