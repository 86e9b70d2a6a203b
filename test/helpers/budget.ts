/**
 * The e2e tier's extended tests run when the run's time allows. scripts/test-all gives the
 * tier a moment by which the extended tests must be done (KLAB_E2E_EXTENDED_BY, seconds
 * since the epoch); each extended test runs only if its estimate (a slow day's figure) and
 * the core tests still to come after it fit before that moment. KLAB_E2E_FULL=1 runs them
 * all; KLAB_E2E_FULL=0 none.
 *
 * The estimates are a slow day's figures (the slowest runs on record, on 2-core hosts under
 * TCG; the walk's own is the Xeon's of 2026-12-07 night). On a faster host they would leave
 * out tests the run has time for, so the tier scales them by its own pace: how long a core
 * test that always runs (the tutorial walk) took against its slow-day time, never below
 * MIN_PACE. The run's hard limit (KLAB_TEST_BUDGET_S in
 * scripts/test-all) stays where it is, well after the moment the extended tests aim for.
 */

export interface ExtendedPlan {
  /** KLAB_E2E_FULL: '1' all, '0' none, anything else: by the budget. */
  full?: string;
  /** KLAB_E2E_EXTENDED_BY, seconds since the epoch; absent: none (a plain vitest run). */
  bySeconds?: string;
}

export interface ExtendedDecision {
  run: boolean;
  reason: string;
}

/** The lowest pace taken: a fast start may not shrink a slow day's estimates below 60 %. */
export const MIN_PACE = 0.6;

/**
 * The run's pace: a core test's time against its slow-day time, between MIN_PACE and 1
 * (a run slower than the slow day keeps the slow-day estimates; they already err long).
 */
export function runPace(measuredS: number, slowDayS: number): number {
  if (!(measuredS > 0) || !(slowDayS > 0)) return 1;
  return Math.min(1, Math.max(MIN_PACE, Math.round((measuredS / slowDayS) * 100) / 100));
}

/**
 * Whether an extended test runs now: `estimateS` its own slow-day time, `tailS` the core
 * tests after it (they must still fit), both scaled by the run's `pace` (runPace).
 */
export function extendedDecision(
  plan: ExtendedPlan,
  nowMs: number,
  estimateS: number,
  tailS: number,
  pace = 1,
): ExtendedDecision {
  if (plan.full === '1') return { run: true, reason: 'KLAB_E2E_FULL=1' };
  if (plan.full === '0') return { run: false, reason: 'KLAB_E2E_FULL=0' };
  const by = Number(plan.bySeconds);
  if (!plan.bySeconds || !Number.isFinite(by) || by <= 0) {
    return { run: false, reason: 'no run budget given (KLAB_E2E_EXTENDED_BY unset)' };
  }
  const leftS = Math.floor(by - nowMs / 1000);
  const slowDayS = estimateS + tailS;
  const needS = Math.ceil(slowDayS * pace);
  const scaled = pace < 1 ? ` (${slowDayS} s on a slow day x ${pace}, this run's pace)` : '';
  return {
    run: needS <= leftS,
    reason: `${Math.max(leftS, 0)} s left of the run's budget, needs up to ${needS} s${scaled}`,
  };
}
