/** The closing lines of `npm test` (scripts/test-summary.mjs), from Vitest's JSON reports. */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = path.resolve(import.meta.dirname, '../../../scripts/test-summary.mjs');
let dir = '';

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function report(passed: number, failures: { name: string; message: string }[]) {
  return JSON.stringify({
    numPassedTests: passed,
    numFailedTests: failures.length,
    numPendingTests: 0,
    numTodoTests: 0,
    testResults: [
      {
        name: 'test/e2e/lab.test.ts',
        status: failures.length > 0 ? 'failed' : 'passed',
        assertionResults: [
          ...failures.map((f) => ({
            fullName: f.name,
            status: 'failed',
            failureMessages: [f.message],
          })),
          { fullName: 'a passing test', status: 'passed', failureMessages: [] },
        ],
      },
    ],
  });
}

/** Runs the script on the reports given; returns its output and exit code. */
async function summary(reports: Record<string, string>): Promise<{ out: string; code: number }> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'klab-summary-'));
  for (const [tier, json] of Object.entries(reports)) {
    await writeFile(path.join(dir, `${tier}.json`), json);
  }
  try {
    return { out: execFileSync('node', [SCRIPT, dir, '0'], { encoding: 'utf8' }), code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; status: number };
    return { out: failed.stdout, code: failed.status };
  }
}

describe('the closing lines of npm test', () => {
  it("name each failed test with its reason's first lines (no colours, no stack), then the counts", async () => {
    const { out, code } = await summary({
      unit: report(3, []),
      containers: report(2, []),
      e2e: report(5, [
        {
          name: 'a lab swap-on check',
          message:
            "\u001b[31mAssertionError: expected 'x' to contain 'y'\u001b[39m\n    at walk (test/e2e/lab.test.ts:342:61)\n\nExpected: y",
        },
      ]),
    });
    expect(code).toBe(1);
    expect(out).toContain(
      "FAILED e2e: a lab swap-on check\n  AssertionError: expected 'x' to contain 'y'\n  Expected: y\n",
    );
    expect(out).not.toContain('lab.test.ts:342');
    expect(out.trim().split('\n').at(-1)).toBe('10 passed, 1 failed, 0 skipped');
  });

  it('counts a tier without a report as failed, and a green run exits 0', async () => {
    const missing = await summary({ unit: report(3, []), containers: report(2, []) });
    expect(missing.code).toBe(1);
    expect(missing.out).toContain('e2e: no report');
    const green = await summary({
      unit: report(3, []),
      containers: report(2, []),
      e2e: report(5, []),
    });
    expect(green.code).toBe(0);
    expect(green.out).not.toContain('FAILED');
    expect(green.out.trim().split('\n').at(-1)).toBe('10 passed, 0 failed, 0 skipped');
  });
});
