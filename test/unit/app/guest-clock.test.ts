import { describe, expect, it } from 'vitest';
import { clockSkew, parseGuestTime, stepGuestClock } from '../../../src/app/guest-clock.js';
import type { Clock } from '../../../src/model/events.js';
import { FakeHost } from '../../helpers/fake-host.js';

/** A host clock that advances `stepMs` every time it is read (each read is a moment). */
function tickingClock(startMs: number, stepMs: number): Clock {
  let now = startMs;
  return {
    now: () => {
      now += stepMs;
      return now;
    },
    sleep: async () => undefined,
  };
}

describe('guest clock skew', () => {
  it('is zero inside the round trip and the distance outside it', () => {
    expect(clockSkew({ sentMs: 1000, receivedMs: 9000, guestMs: 5000 })).toBe(0);
    expect(clockSkew({ sentMs: 1000, receivedMs: 9000, guestMs: 1000 })).toBe(0);
    expect(clockSkew({ sentMs: 10_000, receivedMs: 11_000, guestMs: 4000 })).toBe(6);
    expect(clockSkew({ sentMs: 10_000, receivedMs: 11_000, guestMs: 14_500 })).toBe(3.5);
  });

  it('a 6 s SSH round trip alone is not a skew (the failure a loaded host once gave)', () => {
    // The guest answered the moment the command arrived: 3 s after it was sent.
    expect(clockSkew({ sentMs: 0, receivedMs: 6000, guestMs: 3000 })).toBe(0);
  });

  it('parses date +%s.%N and refuses anything else', () => {
    expect(parseGuestTime('1764050000.123456789\n')).toBe(1_764_050_000_123);
    expect(() => parseGuestTime('date: invalid\n')).toThrow(/unexpected answer from date/);
  });
});

describe('stepping a guest clock', () => {
  it('uses the guest agent when the VM has one, and does not set the time over SSH', async () => {
    const clock = tickingClock(1_000_000, 500);
    const host = new FakeHost('node1', (argv) =>
      argv[0] === 'date' && argv[1] === '+%s.%N' ? { stdout: '1000.8\n' } : undefined,
    );
    const result = await stepGuestClock({ vm: 'node1', host, setByAgent: async () => true }, clock);
    expect(result.method).toBe('guest agent');
    expect(result.skewS).toBe(0);
    expect(host.commands().some((cmd) => cmd.startsWith('sudo date -u -s'))).toBe(false);
  });

  it('falls back to SSH when there is no agent, with sub-second precision', async () => {
    const clock = tickingClock(2_000_000, 100);
    let guest = 0;
    const host = new FakeHost('master', (argv) => {
      if (argv[1] === '-u' && argv[2] === '-s') {
        guest = Number(argv[3]?.slice(1)) * 1000;
        return {};
      }
      if (argv[1] === '+%s.%N') return { stdout: `${(guest + 100) / 1000}\n` };
      return undefined;
    });
    const result = await stepGuestClock(
      { vm: 'master', host, setByAgent: async () => false },
      clock,
    );
    expect(result.method).toBe('ssh');
    expect(result.skewS).toBeLessThanOrEqual(2);
    expect(host.commands()[0]).toMatch(/^sudo date -u -s @\d+\.\d{3}$/);
  });

  it('only measures a clock the agent set as the VM resumed, and sets it again when that is off', async () => {
    const clock = tickingClock(1_000_000, 500);
    let agentCalls = 0;
    const right = new FakeHost('node1', (argv) =>
      argv[1] === '+%s.%N' ? { stdout: '1000.8\n' } : undefined,
    );
    const setByAgent = async () => {
      agentCalls += 1;
      return true;
    };
    const result = await stepGuestClock(
      { vm: 'node1', host: right, setByAgent, alreadySet: true },
      clock,
    );
    expect(result).toMatchObject({ method: 'guest agent', skewS: 0 });
    expect(agentCalls).toBe(0);
    // A clock still off after the early set (the agent answered before the guest ran it):
    // the next attempt sets it again.
    let reads = 0;
    const late = new FakeHost('node2', (argv) => {
      if (argv[1] !== '+%s.%N') return undefined;
      reads += 1;
      return { stdout: reads === 1 ? '900.0\n' : '1003.3\n' };
    });
    const again = await stepGuestClock(
      { vm: 'node2', host: late, setByAgent, alreadySet: true },
      tickingClock(1_000_000, 500),
    );
    expect(again.skewS).toBeLessThanOrEqual(2);
    expect(agentCalls).toBe(1);
  });

  it('fails with KLAB_CLOCK_SKEW after three tries, naming the skew and the round trip', async () => {
    const clock = tickingClock(3_000_000, 200);
    const host = new FakeHost('node2', (argv) =>
      argv[1] === '+%s.%N' ? { stdout: '2000.0\n' } : undefined,
    );
    const attempt = stepGuestClock({ vm: 'node2', host, setByAgent: async () => true }, clock);
    await expect(attempt).rejects.toMatchObject({ code: 'KLAB_CLOCK_SKEW', vm: 'node2' });
    await expect(
      stepGuestClock({ vm: 'node2', host, setByAgent: async () => true }, clock),
    ).rejects.toThrow(
      /node2's clock is \d+\.\d s off after stepping it 3 times \(guest agent; the measurement's round trip was 0\.2 s\)/,
    );
  });
});
