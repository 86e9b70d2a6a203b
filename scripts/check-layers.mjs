#!/usr/bin/env node
// klab's layers import one way only. Each folder has a rank; a file may import from its own
// folder or from a folder of lower rank, never sideways or up, and no file circle may form.
// Usage: node scripts/check-layers.mjs [ROOT]   (exit 1 and one line per problem when broken)
import fs from 'node:fs';
import path from 'node:path';

/** Lowest first. `provision` is the top-level folder of provisioner modules. */
export const LAYERS = [
  ['src/model', 'vocabulary: spec, topology, guest paths, errors, events, ports'],
  ['src/adapters', 'the outside world: processes, SSH, HTTP, vagrant, virsh, tar'],
  ['src/pki', 'certificates and kubeconfigs'],
  ['src/stacks', 'what a stack is, its artifacts and cache'],
  ['src/render', 'text for the host: Vagrantfile, klab.yaml, manifests, templates'],
  ['provision', 'provisioner modules, one folder per step'],
  ['src/checks', 'the cluster checks of klab verify'],
  ['src/lessons', 'lessons: the catalog, their checks and the faults they inject'],
  ['src/app', 'one file per verb group'],
  ['src/ui', 'how events look'],
  ['src/commands', 'flags to one app call'],
  ['src', 'main.ts, cli.ts'],
];

function layerOf(rel) {
  // The longest matching prefix: src/app/x.ts is in src/app, src/main.ts in src.
  let best;
  for (const [index, [dir]] of LAYERS.entries()) {
    if (rel === dir || rel.startsWith(`${dir}/`)) {
      if (best === undefined || dir.length > LAYERS[best][0].length) best = index;
    }
  }
  return best;
}

function sourceFiles(root) {
  const files = [];
  for (const top of ['src', 'provision']) {
    const walk = (dir) => {
      if (!fs.existsSync(dir)) return;
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (/\.tsx?$/.test(entry.name)) files.push(full);
      }
    };
    walk(path.join(root, top));
  }
  return files;
}

export function checkLayers(root) {
  const problems = [];
  const graph = new Map();
  for (const file of sourceFiles(root)) {
    const rel = path.relative(root, file);
    const from = layerOf(rel);
    const text = fs.readFileSync(file, 'utf8');
    const targets = [];
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.relative(root, path.resolve(path.dirname(file), match[1])).replace(/\.js$/, '.ts');
      targets.push(target);
      const to = layerOf(target);
      if (from === undefined || to === undefined) {
        problems.push(`${rel}: imports ${target}, which is in no layer`);
      } else if (to > from) {
        problems.push(`${rel} (${LAYERS[from][0]}) imports up: ${target} (${LAYERS[to][0]})`);
      }
    }
    graph.set(rel, targets);
  }
  // Circles between files, found by depth-first search.
  const state = new Map();
  const stack = [];
  const visit = (node) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') {
        problems.push(`circle: ${[...stack.slice(stack.indexOf(next)), next].join(' -> ')}`);
      } else if (!state.has(next) && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.resolve(process.argv[2] ?? '.');
  const problems = checkLayers(root);
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) {
    console.error(`${problems.length} layer problem(s); the layers, lowest first: ${LAYERS.map(([d]) => d).join(' < ')}`);
    process.exit(1);
  }
  console.log('layers: every import runs down, no circle');
}
