import { describe, expect, it } from 'vitest';
import { extendedDecision } from '../../helpers/budget.js';

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
});
