import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types.
import { checkLayers } from '../../scripts/check-layers.mjs';

const check = checkLayers as (root: string) => string[];

async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'klab-layers-'));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  return root;
}

describe('layers', () => {
  it("klab's own tree imports one way only, with no circle", () => {
    expect(check(path.resolve(import.meta.dirname, '../..'))).toEqual([]);
  });

  it('finds an import that runs back up', async () => {
    const root = await tree({
      'src/model/spec.ts': "import { x } from '../app/create.js';\n",
      'src/app/create.ts': 'export const x = 1;\n',
    });
    expect(check(root)).toEqual([
      'src/model/spec.ts (src/model) imports up: src/app/create.ts (src/app)',
    ]);
  });

  it('finds a provisioner module that reaches into the application', async () => {
    const root = await tree({
      'provision/etcd/index.ts': "import { x } from '../../src/app/lab.js';\n",
      'src/app/lab.ts': 'export const x = 1;\n',
    });
    expect(check(root)).toHaveLength(1);
  });

  it('finds a circle inside one folder', async () => {
    const root = await tree({
      'src/stacks/a.ts': "import { b } from './b.js';\nexport const a = 1;\n",
      'src/stacks/b.ts': "import { a } from './a.js';\nexport const b = 1;\n",
    });
    expect(check(root)).toEqual(['circle: src/stacks/a.ts -> src/stacks/b.ts -> src/stacks/a.ts']);
  });
});
