/**
 * Guest clocks after a snapshot save or revert: a paused or reverted guest's clock is
 * behind the host's, and TLS then sees certificates "not yet valid". The clock is set
 * through QEMU's guest agent when the VM has one (libvirt's `domtime --now`: the host's
 * time is handed over inside QEMU, no SSH round trip in it), else over SSH. Either way
 * the result is measured over SSH and judged against that measurement's own round trip,
 * so a slow, loaded host is not mistaken for a wrong clock.
 */
import { KlabError } from '../model/errors.js';
import type { Clock } from '../model/events.js';
import type { RemoteHost } from '../model/remote.js';

/** How far outside the measured round trip a guest clock may be and still count as right. */
export const CLOCK_TOLERANCE_S = 2;
const ATTEMPTS = 3;

export interface ClockReading {
  /** Host time (ms) just before the guest was asked, and just after it answered. */
  sentMs: number;
  receivedMs: number;
  /** The guest's time (ms) as it answered. */
  guestMs: number;
}

/**
 * How far (seconds) the guest's time lies outside [sent, received]: 0 when it falls
 * inside the round trip, since then nothing tells it from the host's.
 */
export function clockSkew(reading: ClockReading): number {
  if (reading.guestMs < reading.sentMs) return (reading.sentMs - reading.guestMs) / 1000;
  if (reading.guestMs > reading.receivedMs) return (reading.guestMs - reading.receivedMs) / 1000;
  return 0;
}

/** `date +%s.%N` output -> ms. */
export function parseGuestTime(stdout: string): number {
  const value = Number(stdout.trim());
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`unexpected answer from date: ${JSON.stringify(stdout.slice(0, 80))}`);
  }
  return Math.round(value * 1000);
}

export interface GuestClockPort {
  vm: string;
  host: RemoteHost;
  /** Sets the guest clock through the guest agent; false when the VM has no agent. */
  setByAgent(): Promise<boolean>;
  /**
   * The agent set this clock a moment ago (right as the VM resumed, beside the SSH
   * connection): the first attempt only measures, and sets again only if that is off.
   */
  alreadySet?: boolean;
}

export interface ClockResult {
  vm: string;
  skewS: number;
  roundTripS: number;
  method: 'guest agent' | 'ssh';
}

async function readClock(host: RemoteHost, clock: Clock): Promise<ClockReading> {
  const sentMs = clock.now();
  const result = await host.run(['date', '+%s.%N']);
  const receivedMs = clock.now();
  return { sentMs, receivedMs, guestMs: parseGuestTime(result.stdout) };
}

/** Steps one guest clock to the host's and checks it; retries, since a load spike can hit any try. */
export async function stepGuestClock(port: GuestClockPort, clock: Clock): Promise<ClockResult> {
  let last: ClockReading | undefined;
  let method: ClockResult['method'] = 'ssh';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
    const byAgent =
      attempt === 1 && port.alreadySet === true ? true : await port.setByAgent().catch(() => false);
    method = byAgent ? 'guest agent' : 'ssh';
    if (!byAgent) {
      // The time is taken as the command leaves; the round trip's first half is added
      // because that is about when the guest runs it.
      const rtt = last ? last.receivedMs - last.sentMs : 0;
      const at = (clock.now() + rtt / 2) / 1000;
      await port.host.run(['date', '-u', '-s', `@${at.toFixed(3)}`], { sudo: true });
    }
    last = await readClock(port.host, clock);
    const skewS = clockSkew(last);
    if (skewS <= CLOCK_TOLERANCE_S) {
      return { vm: port.vm, skewS, roundTripS: (last.receivedMs - last.sentMs) / 1000, method };
    }
  }
  const reading = last as ClockReading;
  const skew = clockSkew(reading);
  throw new KlabError(
    'KLAB_CLOCK_SKEW',
    `${port.vm}'s clock is ${skew.toFixed(1)} s off after stepping it ${ATTEMPTS} times (${method}; the measurement's round trip was ${((reading.receivedMs - reading.sentMs) / 1000).toFixed(1)} s)`,
    {
      vm: port.vm,
      hint: `A guest clock that will not follow the host's breaks TLS. Look at the guest: klab ssh ${port.vm} -- timedatectl; a reset or "klab up" steps it again.`,
    },
  );
}
