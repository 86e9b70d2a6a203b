/** klab verify: open the lab, connect, run every cluster check (src/checks). */
import { type CheckResult, runChecks } from '../checks/index.js';
import { result } from '../model/events.js';
import { type LabRequest, openCreatedLab, stepContext, withHosts } from './lab.js';

export async function verifyLab(request: LabRequest): Promise<CheckResult[]> {
  const lab = await openCreatedLab(request);
  const sink = lab.sink;
  const started = Date.now();
  const results = await withHosts(lab, (pool) => runChecks(stepContext(lab, pool)));
  const seconds = Math.round((Date.now() - started) / 1000);
  result(sink, 'VERIFY_PASSED', `All ${results.length} cluster checks passed (${seconds} s).`, {
    kind: 'VerifyReport',
    passed: true,
    seconds,
    checks: results,
  });
  return results;
}
