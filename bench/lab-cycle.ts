/**
 * Benchmark: the learner's cycle on a 2-VM lab (master + node1, 1.5 GB each, like the
 * e2e tier): a fresh `klab create` (boot, the whole cluster, verify), `klab snapshot save`,
 * `klab reset` to the checkpoint after provisioning (revert, clocks, health), `klab verify`.
 * Prints each time and the ratio reset / fresh provisioning (target: under 0.1); asserts
 * nothing. Takes 15-25 minutes under software emulation.
 *
 *   npm run build && node dist/bench/lab-cycle.js
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const LAB = '/var/tmp/klab-bench-cycle';
const SPEC = `name: cycle
box: klab/debian-12
stack: debian
network:
  subnet: 192.168.225.0/24
  managementSubnet: 192.168.226.0/24
nodes:
  - { name: master, role: master, memory: 1536 }
  - { name: node1, memory: 1536 }
`;

interface RunDocument {
  ok: boolean;
  code: string;
  error?: { code: string; message: string };
  events: { code: string; subject?: string; ms?: number }[];
}

/** Runs klab with --json; returns the wall time and the run's document (docs/json-output.md). */
async function klab(label: string, args: string[]): Promise<{ seconds: number; doc: RunDocument }> {
  const started = process.hrtime.bigint();
  const result = await execa('node', [CLI, '--dir', LAB, ...args, '--json'], {
    env: { CI: 'true' },
    reject: false,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const doc = JSON.parse(String(result.stdout) || '{}') as RunDocument;
  if (result.exitCode !== 0 || !doc.ok) {
    throw new Error(
      `${label} failed (exit ${result.exitCode}, ${doc.error?.code}: ${doc.error?.message}):\n${String(result.stderr).slice(-3000)}`,
    );
  }
  console.log(`${label}: ${seconds.toFixed(1)} s`);
  return { seconds, doc };
}

/** Seconds per provisioning step, from the STEP_* events of a create. */
function stepTimes(doc: RunDocument): string {
  return doc.events
    .filter((event) => event.code === 'STEP_APPLIED' || event.code === 'STEP_ALREADY_DONE')
    .map((event) => `${event.subject} ${((event.ms ?? 0) / 1000).toFixed(0)} s`)
    .join(', ');
}

async function main(): Promise<void> {
  await rm(LAB, { recursive: true, force: true });
  await mkdir(LAB, { recursive: true });
  await writeFile(path.join(LAB, 'klab.yaml'), SPEC);
  try {
    const created = await klab('klab create (2 VMs, whole cluster, verify)', ['create']);
    console.log(`  steps: ${stepTimes(created.doc)}`);
    const fresh = created.seconds;
    const save = (await klab('klab snapshot save bench', ['snapshot', 'save', 'bench'])).seconds;
    const reset = (
      await klab('klab reset after-kubelet (revert, clocks, health)', ['reset', 'after-kubelet'])
    ).seconds;
    const verify = (await klab('klab verify (after the reset)', ['verify'])).seconds;
    const resetSaved = (await klab('klab reset bench', ['reset', 'bench'])).seconds;
    console.log(
      `save ${save.toFixed(1)} s, reset ${reset.toFixed(1)} s / ${resetSaved.toFixed(1)} s, ` +
        `verify ${verify.toFixed(1)} s; ratio reset / fresh create: ${(reset / fresh).toFixed(3)} (target < 0.1)`,
    );
  } finally {
    await execa('node', [CLI, '--dir', LAB, 'destroy', '--yes'], { reject: false });
  }
}

await main();
