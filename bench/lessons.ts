/**
 * Benchmark: how long a learner waits from `klab lesson start ID` to a ready lab (every VM
 * back at the lesson's checkpoint, healthy, the fault injected), per lesson, and how long
 * `klab lesson solve` takes. Runs on an existing lab that has every checkpoint (for
 * example the one `npm run bench -- --keep` leaves). Prints figures; asserts nothing.
 *
 *   npm run build && node dist/bench/lessons.js [LAB_DIR [LESSON...]]
 *   (default /var/tmp/klab-bench-lab, every lesson the lab can run)
 */
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const LAB = process.argv[2] ?? '/var/tmp/klab-bench-lab';
const ONLY = process.argv.slice(3);

interface Doc {
  ok: boolean;
  code: string;
  error?: { code: string; message: string; details?: string[] };
  items?: { id: string; kind: string; unsupported?: string }[];
  seconds?: number;
}

async function klab(args: string[]): Promise<{ seconds: number; doc: Doc }> {
  const started = process.hrtime.bigint();
  const result = await execa('node', [CLI, '--dir', LAB, ...args, '--json'], {
    env: { CI: 'true' },
    reject: false,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const doc = JSON.parse(String(result.stdout) || '{}') as Doc;
  if (result.exitCode !== 0 || !doc.ok) {
    const why = doc.error?.details?.[0] ?? doc.error?.message;
    throw new Error(`klab ${args.join(' ')}: ${doc.error?.code}: ${why}`);
  }
  return { seconds, doc };
}

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), lab ${LAB}\n` +
      'lesson                  kind       start->ready   solve   (the check before solving)',
  );
  const list = await klab(['lesson', 'list']);
  const rows: [string, number, number][] = [];
  for (const lesson of list.doc.items ?? []) {
    if (ONLY.length > 0 && !ONLY.includes(lesson.id)) continue;
    if (lesson.unsupported) {
      console.log(
        `${lesson.id.padEnd(23)} ${lesson.kind.padEnd(10)} not on this lab: ${lesson.unsupported}`,
      );
      continue;
    }
    const start = await klab(['lesson', 'start', lesson.id]);
    // Before solving, the check must fail (the lesson has something to do), with a reason.
    const before = await klab(['lesson', 'check', lesson.id]).then(
      () => 'PASSED BEFORE SOLVING (nothing to do?)',
      (error: Error) =>
        `fails: ${error.message.replace(/^klab lesson check \S+: /, '').slice(0, 100)}`,
    );
    const solve = await klab(['lesson', 'solve', lesson.id]);
    rows.push([lesson.id, start.seconds, solve.seconds]);
    console.log(
      `${lesson.id.padEnd(23)} ${lesson.kind.padEnd(10)} ${start.seconds.toFixed(1).padStart(8)} s ${solve.seconds.toFixed(1).padStart(8)} s   ${before}`,
    );
  }
  const starts = rows.map((row) => row[1]);
  console.log(
    `start->ready: min ${Math.min(...starts).toFixed(1)} s, max ${Math.max(...starts).toFixed(1)} s, mean ${(starts.reduce((a, b) => a + b, 0) / starts.length).toFixed(1)} s`,
  );
}

await main();
