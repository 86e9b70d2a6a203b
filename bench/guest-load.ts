/**
 * Benchmark: what a lab costs inside its VMs while nothing is asked of it. Over one window
 * (60 s unless given), on every VM at once: the guest's CPU split (user, system, softirq,
 * I/O wait, idle, steal) from /proc/stat, and the processes that used the most CPU, each
 * with its user and system share (of one vCPU: 100 % is one vCPU busy). Under software
 * emulation (TCG) this is the load a 2-core host carries before a learner does anything.
 * Prints figures; asserts nothing.
 *
 *   npm run build && node dist/bench/guest-load.js [LAB_DIR [SECONDS]]
 *   (default /var/tmp/klab-bench-lab, 60 s)
 */
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const LAB = process.argv[2] ?? '/var/tmp/klab-bench-lab';
const WINDOW_S = Number(process.argv[3] ?? 60);
const TOP = 8;

// One snapshot: the clock tick, the vCPUs, the uptime, the "cpu" line, counters ("= name value": context switches,
// page faults, timer interrupts and the inter-processor interrupts that stop other vCPUs),
// then the stat line of every process (one cat: a fork per process takes seconds on a busy
// guest). Taken twice, WINDOW_S apart, in one SSH command so every VM measures the same
// window; the guest's uptime says how long the window really was.
const COUNTERS =
  'awk \'/^ctxt /{print "= ctxt", $2}\' /proc/stat; ' +
  'awk \'/^pgfault /{print "= pgfault", $2}\' /proc/vmstat; ' +
  'awk \'$1 ~ /^(LOC|RES|CAL|TLB):$/ {s=0; for (i=2; i<=NF; i++) if ($i ~ /^[0-9]+$/) s+=$i; print "=", substr($1, 1, 3), s}\' /proc/interrupts';
const SNAPSHOT =
  `getconf CLK_TCK; nproc; cut -d' ' -f1 /proc/uptime; head -n1 /proc/stat; ${COUNTERS}; ` +
  'cat /proc/[0-9]*/stat 2>/dev/null; true';
const SCRIPT = `${SNAPSHOT}; echo ---; sleep ${WINDOW_S}; ${SNAPSHOT}`;

interface Snapshot {
  tick: number;
  vcpus: number;
  uptime: number;
  cpu: number[];
  counters: Map<string, number>;
  procs: Map<string, { name: string; user: number; system: number }>;
}

// What each counter is, in the report.
const COUNTER_NAMES: [string, string][] = [
  ['ctxt', 'context switches'],
  ['pgfault', 'page faults'],
  ['LOC', 'timer interrupts'],
  ['RES', 'reschedule IPIs'],
  ['CAL', 'function-call IPIs'],
  ['TLB', 'TLB shootdowns'],
];

function parseSnapshot(text: string): Snapshot {
  const [tick = '100', vcpus = '1', uptime = '0', cpuLine = '', ...rest] = text.trim().split('\n');
  const procs = new Map<string, { name: string; user: number; system: number }>();
  const counters = new Map<string, number>();
  for (const line of rest) {
    if (line.startsWith('= ')) {
      const [, name = '', value = '0'] = line.split(' ');
      counters.set(name, Number(value));
      continue;
    }
    // pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces and parentheses.
    const open = line.indexOf('(');
    const close = line.lastIndexOf(')');
    if (open < 0 || close < 0) continue;
    const pid = line.slice(0, open).trim();
    const fields = line
      .slice(close + 2)
      .split(' ')
      .map(Number);
    procs.set(pid, {
      name: line.slice(open + 1, close),
      user: fields[11] ?? 0,
      system: fields[12] ?? 0,
    });
  }
  return {
    tick: Number(tick),
    vcpus: Number(vcpus),
    uptime: Number(uptime),
    cpu: cpuLine.split(/\s+/).slice(1).map(Number),
    counters,
    procs,
  };
}

const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(0)} %`.padStart(5);

async function measure(vm: string): Promise<string> {
  const result = await execa('node', [CLI, '--dir', LAB, 'ssh', vm, '--', 'sh', '-c', SCRIPT], {
    env: { CI: 'true' },
    reject: false,
  });
  if (result.exitCode !== 0)
    return `${vm}: could not measure (exit ${result.exitCode}: ${String(result.stderr).trim()})`;
  const [first = '', second = ''] = String(result.stdout).split('\n---\n');
  const a = parseSnapshot(first);
  const b = parseSnapshot(second);
  // /proc/stat: user nice system idle iowait irq softirq steal
  const d = b.cpu.map((value, i) => value - (a.cpu[i] ?? 0));
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = d;
  const total = d.slice(0, 8).reduce((sum, value) => sum + value, 0) || 1;
  const window = b.uptime - a.uptime || WINDOW_S;
  const vcpus = b.vcpus;
  const lines = [
    `${vm} (${vcpus} vCPU, ${window.toFixed(0)} s): user ${pct(user + nice, total)}, system ${pct(system + irq, total)}, ` +
      `softirq ${pct(softirq, total)}, iowait ${pct(iowait, total)}, idle ${pct(idle, total)}, steal ${pct(steal, total)}`,
  ];
  const rates = COUNTER_NAMES.filter(([key]) => b.counters.has(key)).map(
    ([key, label]) =>
      `${label} ${(((b.counters.get(key) ?? 0) - (a.counters.get(key) ?? 0)) / window).toFixed(0)}/s`,
  );
  lines.push(`  ${rates.join(', ')}`);
  const used = [...b.procs]
    .map(([pid, now]) => {
      const before = a.procs.get(pid);
      return {
        pid,
        name: now.name,
        user: now.user - (before?.user ?? 0),
        system: now.system - (before?.system ?? 0),
      };
    })
    .filter((p) => p.user + p.system > 0)
    .sort((x, y) => y.user + y.system - (x.user + x.system));
  const oneCpu = window * b.tick;
  for (const p of used.slice(0, TOP)) {
    lines.push(
      `  ${p.name.padEnd(24)} ${pct(p.user + p.system, oneCpu)} of a vCPU (user ${pct(p.user, oneCpu)}, system ${pct(p.system, oneCpu)})`,
    );
  }
  const rest = used.slice(TOP).reduce((sum, p) => sum + p.user + p.system, 0);
  lines.push(`  ${`${Math.max(used.length - TOP, 0)} others`.padEnd(24)} ${pct(rest, oneCpu)}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const status = await execa('node', [CLI, '--dir', LAB, 'status', '--json'], {
    env: { CI: 'true' },
    reject: false,
  });
  const doc = JSON.parse(String(status.stdout) || '{}') as {
    vms?: { name: string; state: string }[];
  };
  const vms = (doc.vms ?? []).filter((vm) => vm.state === 'running').map((vm) => vm.name);
  if (vms.length === 0) throw new Error(`no running VM in ${LAB} (klab status: ${status.stderr})`);
  const load = os.loadavg()[0]?.toFixed(1);
  console.log(
    `machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), host load ${load}; lab ${LAB}, window ${WINDOW_S} s`,
  );
  for (const report of await Promise.all(vms.map(measure))) console.log(report);
}

await main();
