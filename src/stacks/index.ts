/** The stacks klab knows, validated when loaded. */
import { KlabError } from '../model/errors.js';
import { debian } from './debian.js';
import { type Stack, StackSchema } from './manifest.js';
import { v1_11_1 } from './v1.11.1.js';

const RAW = { 'v1.11.1': v1_11_1, debian } as const;

export function loadStack(name: string): Stack {
  const raw = RAW[name as keyof typeof RAW];
  if (!raw) {
    throw new KlabError('KLAB_USAGE', `there is no stack "${name}"`, {
      hint: `Stacks: ${Object.keys(RAW).join(', ')}.`,
    });
  }
  const parsed = StackSchema.safeParse(raw);
  if (!parsed.success) {
    throw new KlabError(
      'KLAB_INTERNAL',
      `the ${name} stack manifest is invalid: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}
