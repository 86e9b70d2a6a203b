/**
 * Benchmark: the default 4-VM lab (master, node1..node3, 2 GB each), as a learner gets it.
 * A fresh `klab create` (boot, every step with its checkpoint, verify), then the saved state
 * of every checkpoint, resets to an early, a middle and a late checkpoint (revert, SSH,
 * clocks, health) and `klab verify` after the late one. Prints figures and the ratios;
 * asserts nothing. About 25-45 minutes under software emulation.
 * The late reset runs three times (--late-runs N): on a loaded host the same reset of the
 * same lab varied 80-163 s within 40 minutes (docs/performance.md), so one figure says little.
 *
 *   npm run build && npm run bench            # destroys the bench lab at the end
 *   npm run bench -- --keep                   # leaves it running (in /var/tmp/klab-bench-lab)
 *   npm run bench -- --late-runs 1            # the late reset once
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { CONNECT_TASK } from '../src/app/lab.js';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const LAB = '/var/tmp/klab-bench-lab';
// The default lab (klab init with no answers), on subnets of its own.
const SPEC = `name: bench
network:
  subnet: 192.168.227.0/24
  managementSubnet: 192.168.228.0/24
nodes:
  - { name: master, role: master }
  - { name: node1 }
  - { name: node2 }
  - { name: node3 }
`;
const RESETS = ['after-etcd', 'after-control-plane', 'after-kubelet'];
const GiB = 1024 ** 3;

interface RunEvent {
  code: string;
  title?: string;
  subject?: string;
  ms?: number;
}
interface RunDocument {
  ok: boolean;
  code: string;
  error?: { code: string; message: string };
  events: RunEvent[];
  items?: { name: string; afterStep?: string; stateBytes: number }[];
}

/** Runs klab with --json; returns the wall time and the run's document (docs/json-output.md). */
async function klab(label: string, args: string[]): Promise<{ seconds: number; doc: RunDocument }> {
  const started = process.hrtime.bigint();
  const result = await execa('node', [CLI, '--dir', LAB, ...args, '--json'], {
    env: { CI: 'true' },
    reject: false,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const doc = JSON.parse(String(result.stdout) || '{"events":[]}') as RunDocument;
  if (result.exitCode !== 0 || !doc.ok) {
    throw new Error(
      `${label} failed (exit ${result.exitCode}, ${doc.error?.code}: ${doc.error?.message}):\n${String(result.stderr).slice(-3000)}`,
    );
  }
  console.log(`${label}: ${seconds.toFixed(1)} s`);
  return { seconds, doc };
}

function seconds(events: RunEvent[], code: string): number {
  return events.filter((e) => e.code === code).reduce((sum, e) => sum + (e.ms ?? 0), 0) / 1000;
}

/** The time of the task with this title (tasks without a code of their own, such as SSH). */
function secondsOf(events: RunEvent[], title: string): number {
  return events.filter((e) => e.title === title).reduce((sum, e) => sum + (e.ms ?? 0), 0) / 1000;
}

/** `--late-runs N` (default 3); anything but a whole number from 1 stops the bench before it starts. */
function lateRuns(): number {
  const index = process.argv.indexOf('--late-runs');
  if (index < 0) return 3;
  const given = process.argv[index + 1];
  const value = Number(given);
  if (!Number.isInteger(value) || value < 1) {
    console.error(
      `--late-runs wants how many times to reset to the late checkpoint (1 or more), not "${given ?? ''}"; e.g. npm run bench -- --late-runs 1`,
    );
    process.exit(2);
  }
  return value;
}

function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GiB`;
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const runs = lateRuns();
  console.log(
    `machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, ${os.release()}`,
  );
  await execa('node', [CLI, '--dir', LAB, 'destroy', '--yes'], { reject: false });
  await rm(LAB, { recursive: true, force: true });
  await mkdir(LAB, { recursive: true });
  await writeFile(path.join(LAB, 'klab.yaml'), SPEC);
  try {
    const created = await klab('klab create (4 VMs, every step, checkpoints, verify)', ['create']);
    const events = created.doc.events;
    const boot = seconds(events, 'VMS_BOOTED');
    const zero = seconds(events, 'GUEST_MEMORY_ZEROED');
    const snap = seconds(events, 'SNAPSHOT_TAKEN') - zero;
    const checks = seconds(events, 'CHECK_PASSED') + seconds(events, 'CHECK_FAILED');
    console.log('\nper step (s, every VM together):');
    for (const e of events.filter((x) => /^STEP_(APPLIED|ALREADY_DONE)$/.test(x.code))) {
      console.log(
        `  ${(e.subject ?? '?').padEnd(14)} ${((e.ms ?? 0) / 1000).toFixed(0).padStart(5)}`,
      );
    }
    const fresh = created.seconds;
    console.log(
      `\nfresh create ${fresh.toFixed(0)} s = boot ${boot.toFixed(0)} s + steps, checkpoints ` +
        `(${snap.toFixed(0)} s saving, ${zero.toFixed(0)} s zeroing guest memory) and verify checks (${checks.toFixed(0)} s)`,
    );
    console.log(
      `(create - boot) / boot = ${((fresh - boot) / boot).toFixed(2)} (target <= 3); fresh create ${(fresh / 60).toFixed(1)} min (target <= 15)`,
    );

    const list = await klab('klab snapshot list', ['snapshot', 'list']);
    const items = list.doc.items ?? [];
    console.log('\nsaved state per checkpoint (all 4 VMs):');
    for (const item of [...items].reverse()) {
      console.log(`  ${item.name.padEnd(22)} ${gib(item.stateBytes)}`);
    }
    const total = items.reduce((sum, item) => sum + item.stateBytes, 0);
    const largest = Math.max(0, ...items.map((item) => item.stateBytes));
    console.log(
      `  ${items.length} checkpoints, total ${gib(total)}, largest ${gib(largest)} (target <= 1.5 GiB each, 25 GB in all)`,
    );

    const provisioning = fresh - boot;
    console.log('');
    const lateName = RESETS.at(-1) ?? 'after-kubelet';
    const lateTimes: number[] = [];
    const schedule = [...RESETS, ...Array.from({ length: runs - 1 }, () => lateName)];
    for (const [index, name] of schedule.entries()) {
      const again =
        index >= RESETS.length ? `, again (${index - RESETS.length + 2} of ${runs})` : '';
      const reset = await klab(`klab reset ${name}${again} (revert, SSH, clocks, health)`, [
        'reset',
        name,
      ]);
      if (name === lateName) lateTimes.push(reset.seconds);
      console.log(
        `  reset / fresh provisioning: ${(reset.seconds / provisioning).toFixed(3)} (target < 0.05); ` +
          `revert ${seconds(reset.doc.events, 'VMS_REVERTED').toFixed(1)} s, SSH ${secondsOf(reset.doc.events, CONNECT_TASK).toFixed(1)} s, clocks ${seconds(reset.doc.events, 'CLOCKS_STEPPED').toFixed(1)} s, health ${seconds(reset.doc.events, 'LAB_HEALTHY').toFixed(1)} s`,
      );
      const perStep = reset.doc.events
        .filter((e) => e.code === 'STEP_HEALTHY')
        .map((e) => `${e.subject ?? '?'} ${((e.ms ?? 0) / 1000).toFixed(1)}`);
      if (perStep.length > 0) console.log(`    health by step (s): ${perStep.join(', ')}`);
    }
    const sorted = [...lateTimes].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
    const late =
      sorted.length > 1
        ? `median ${median.toFixed(1)} s of ${sorted.length} (${sorted.map((t) => t.toFixed(1)).join(', ')})`
        : `${median.toFixed(1)} s`;
    const verify = await klab('klab verify (after the late reset)', ['verify']);
    console.log(
      `\nsummary: create ${fresh.toFixed(0)} s, boot ${boot.toFixed(0)} s, largest checkpoint ${gib(largest)}, ` +
        `checkpoints ${gib(total)}, reset to ${lateName} ${late}, verify ${verify.seconds.toFixed(0)} s`,
    );
  } finally {
    if (!keep) await execa('node', [CLI, '--dir', LAB, 'destroy', '--yes'], { reject: false });
  }
}

await main();
