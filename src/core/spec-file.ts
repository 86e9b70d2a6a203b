/** Reading klab.yaml: YAML syntax, then the schema, every problem reported at once. */
import { readFile } from 'node:fs/promises';
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
      { details, hint: `Fix ${source}; nothing was changed. "klab init" shows every setting.` },
    );
  }
  return planLab(result.data, defaultName);
}

export function parseSpecText(text: string, defaultName: string, source: string): LabSpec {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new KlabError('KLAB_SPEC_PARSE', `${source} is not valid YAML`, {
      details: doc.errors.map((error) => error.message.split('\n')[0] ?? error.message),
      hint: `Fix the YAML syntax in ${source}; nothing was changed.`,
    });
  }
  return validateSpec(doc.toJS(), defaultName, source);
}

/** Load the lab's spec: klab.yaml if present, else the defaults; flags override both. */
export async function loadSpec(labDir: string, overrides: SpecOverrides = {}): Promise<LabSpec> {
  const file = path.join(labDir, SPEC_FILE);
  const defaultName = labNameFromDir(path.basename(path.resolve(labDir)));
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  let document: Record<string, unknown> = {};
  if (text !== undefined) {
    const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) return parseSpecText(text, defaultName, file);
    const js = doc.toJS() as unknown;
    if (js !== null && js !== undefined && (typeof js !== 'object' || Array.isArray(js))) {
      return validateSpec(js, defaultName, file);
    }
    document = (js ?? {}) as Record<string, unknown>;
  }
  if (overrides.box !== undefined) document = { ...document, box: overrides.box };
  if (overrides.stack !== undefined) document = { ...document, stack: overrides.stack };
  return validateSpec(document, defaultName, text === undefined ? 'the default lab' : file);
}
