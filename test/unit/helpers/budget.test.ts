import { describe, expect, it } from 'vitest';
import { extendedDecision, MIN_PACE, runPace } from '../../helpers/budget.js';

const NOW = 1_800_000_000_000; // ms

describe('extendedDecision (which extended e2e tests a run has time for)', () => {
  it('KLAB_E2E_FULL=1 runs every extended test, whatever the clock says', () => {
    expect(extendedDecision({ full: '1', bySeconds: '1' }, NOW, 900, 60).run).toBe(true);
  });

  it('KLAB_E2E_FULL=0 runs none, even with time to spare', () => {
    const by = String(NOW / 1000 + 10_000);
    expect(extendedDecision({ full: '0', bySeconds: by }, NOW, 60, 0).run).toBe(false);
  });

  it('without a budget (a plain vitest run) none runs, and says why', () => {
    const decision = extendedDecision({}, NOW, 60, 0);
    expect(decision.run).toBe(false);
    expect(decision.reason).toContain('KLAB_E2E_EXTENDED_BY');
    expect(extendedDecision({ bySeconds: 'soon' }, NOW, 60, 0).run).toBe(false);
  });

  it('runs when the test and the core tests after it fit, to the second', () => {
    const by = String(NOW / 1000 + 700);
    expect(extendedDecision({ bySeconds: by }, NOW, 600, 100)).toEqual({
      run: true,
      reason: "700 s left of the run's budget, needs up to 700 s",
    });
    expect(extendedDecision({ bySeconds: by }, NOW, 600, 101).run).toBe(false);
  });

  it('leaves a test out when the budget is already spent', () => {
    const decision = extendedDecision({ bySeconds: String(NOW / 1000 - 50) }, NOW, 60, 0);
    expect(decision).toEqual({
      run: false,
      reason: "0 s left of the run's budget, needs up to 60 s",
    });
  });

  it("scales the slow-day estimates by the run's pace, and says so", () => {
    const by = String(NOW / 1000 + 530);
    // 2026-12-07 on an AMD host: 530 s left, the restore test's 420 + 120 s on a slow day.
    expect(extendedDecision({ bySeconds: by }, NOW, 420, 120).run).toBe(false);
    expect(extendedDecision({ bySeconds: by }, NOW, 420, 120, 0.6)).toEqual({
      run: true,
      reason:
        "530 s left of the run's budget, needs up to 324 s (540 s on a slow day x 0.6, this run's pace)",
    });
    // Node add (1080 + 60 s on a slow day) still does not fit.
    expect(extendedDecision({ bySeconds: by }, NOW, 1080, 60, 0.6).run).toBe(false);
  });
});

describe("runPace (how fast this run goes against a slow day's)", () => {
  it('is the ratio of a core test to its slow-day time, to the hundredth', () => {
    expect(runPace(1050, 1400)).toBe(0.75);
    expect(runPace(1233, 1400)).toBe(0.88);
  });

  it('never goes below MIN_PACE, nor above 1', () => {
    expect(runPace(100, 1400)).toBe(MIN_PACE);
    expect(runPace(779, 1400)).toBe(0.6);
    expect(runPace(2000, 1400)).toBe(1);
  });

  it('is 1 when there is nothing to go by', () => {
    expect(runPace(0, 1400)).toBe(1);
    expect(runPace(Number.NaN, 1400)).toBe(1);
    expect(runPace(700, 0)).toBe(1);
  });
});
