// The closing lines of `npm test` (scripts/test-all): why each failed test failed, in its
// first lines, then the counts per tier and "N passed, N failed". Exit 1 when anything failed.
// Usage: node scripts/test-summary.mjs REPORTS_DIR FAILED_STEPS
import { existsSync, readFileSync } from 'node:fs';
const [dir, failedSteps] = process.argv.slice(2);
let passed = 0, failed = 0, skipped = 0;
for (const tier of ['unit', 'containers', 'e2e']) {
  const file = `${dir}/${tier}.json`;
  if (!existsSync(file)) { console.log(`${tier}: no report (the tier did not run, or was stopped)`); failed += 1; continue; }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const suiteErrors = r.testResults.filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
  // Why each test failed, in its first lines: the end of the run is what CI keeps in view.
  for (const file of r.testResults) {
    const failures = file.assertionResults.filter((a) => a.status === 'failed');
    if (file.status === 'failed' && failures.length === 0) failures.push({ fullName: `${file.name} (the file itself)`, failureMessages: [file.message ?? ''] });
    for (const a of failures) {
      const why = (a.failureMessages ?? []).join('\n').replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => l.trim() && !/^\s*at /.test(l)).slice(0, 4);
      console.log(`FAILED ${tier}: ${a.fullName}\n${why.map((l) => `  ${l.slice(0, 400)}`).join('\n')}`);
    }
  }
  console.log(`${tier}: ${r.numPassedTests} passed, ${r.numFailedTests + suiteErrors} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  passed += r.numPassedTests; failed += r.numFailedTests + suiteErrors; skipped += r.numPendingTests + r.numTodoTests;
}
if (Number(failedSteps) > 0 && failed === 0) failed = Number(failedSteps);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 ? 1 : 0;
