/**
 * The e2e tier's extended tests run when the run's time allows. scripts/test-all gives the
 * tier a moment by which the extended tests must be done (KLAB_E2E_EXTENDED_BY, seconds
 * since the epoch); each extended test runs only if its estimate (a slow day's figure) and
 * the core tests still to come after it fit before that moment. KLAB_E2E_FULL=1 runs them
 * all; KLAB_E2E_FULL=0 none.
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

/**
 * Whether an extended test runs now: `estimateS` its own slow-day time, `tailS` the core
 * tests after it (they must still fit).
 */
export function extendedDecision(
  plan: ExtendedPlan,
  nowMs: number,
  estimateS: number,
  tailS: number,
): ExtendedDecision {
  if (plan.full === '1') return { run: true, reason: 'KLAB_E2E_FULL=1' };
  if (plan.full === '0') return { run: false, reason: 'KLAB_E2E_FULL=0' };
  const by = Number(plan.bySeconds);
  if (!plan.bySeconds || !Number.isFinite(by) || by <= 0) {
    return { run: false, reason: 'no run budget given (KLAB_E2E_EXTENDED_BY unset)' };
  }
  const leftS = Math.floor(by - nowMs / 1000);
  const needS = estimateS + tailS;
  return needS <= leftS
    ? { run: true, reason: `${leftS} s left of the run's budget, needs up to ${needS} s` }
    : {
        run: false,
        reason: `${Math.max(leftS, 0)} s left of the run's budget, needs up to ${needS} s`,
      };
}
