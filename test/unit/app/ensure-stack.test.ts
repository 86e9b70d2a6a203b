import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureStack, type StackOps } from '../../../src/app/artifacts.js';
import { openLab } from '../../../src/app/lab.js';
import { KlabError } from '../../../src/model/errors.js';
import type { KlabEvent } from '../../../src/model/events.js';

async function lab(yaml: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-stack-'));
  await writeFile(path.join(dir, 'klab.yaml'), yaml);
  const events: KlabEvent[] = [];
  return { lab: await openLab({ dir, sink: { emit: (e) => events.push(e) } }), events };
}

function ops(pullError?: KlabError) {
  const calls: string[] = [];
  const value: StackOps = {
    pull: async (stack) => {
      calls.push(`pull ${stack}`);
      if (pullError) throw pullError;
    },
    buildDebian: async () => {
      calls.push('build debian');
    },
  };
  return { value, calls };
}

const unreachable = new KlabError(
  'KLAB_ARTIFACT_UNAVAILABLE',
  'no source could deliver kubernetes-server',
);

describe('ensureStack', () => {
  it('pulls the pinned stack when its sources answer', async () => {
    const { lab: l } = await lab('name: a\n');
    const o = ops();
    expect(await ensureStack(l, 'v1.11.1', o.value)).toBe('v1.11.1');
    expect(o.calls).toEqual(['pull v1.11.1']);
  });

  it('falls back to the debian stack, and says so, when nobody insisted on v1.11.1', async () => {
    const { lab: l, events } = await lab('name: a\nbox: klab/debian-12\n');
    const o = ops(unreachable);
    expect(await ensureStack(l, 'v1.11.1', o.value)).toBe('debian');
    expect(o.calls).toEqual(['pull v1.11.1', 'build debian']);
    const notice = events.find((e) => e.kind === 'notice');
    expect(notice && 'text' in notice ? notice.text : '').toMatch(
      /falls back to the mirror-only "debian" stack/,
    );
    expect(l.state.fallbacks?.length).toBe(1);
  });

  it('does not fall back when the user chose the stack', async () => {
    const { lab: l } = await lab('name: a\nstack: v1.11.1\n');
    const o = ops(unreachable);
    await expect(ensureStack(l, 'v1.11.1', o.value)).rejects.toThrow(/no source could deliver/);
    expect(o.calls).toEqual(['pull v1.11.1']);
  });

  it('does not hide a checksum mismatch behind a fallback', async () => {
    const { lab: l } = await lab('name: a\n');
    const o = ops(new KlabError('KLAB_CHECKSUM_MISMATCH', 'bad file'));
    await expect(ensureStack(l, 'v1.11.1', o.value)).rejects.toThrow(/bad file/);
  });

  it('builds the debian stack directly when the lab uses it', async () => {
    const { lab: l } = await lab('name: a\nstack: debian\n');
    const o = ops();
    expect(await ensureStack(l, 'debian', o.value)).toBe('debian');
    expect(o.calls).toEqual(['build debian']);
  });
});
