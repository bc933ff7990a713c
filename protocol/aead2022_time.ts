/**
 * The 2022 edition's timestamp rule (SIP022): every request/response header and every UDP
 * packet carries the sender's Unix time in seconds (u64 big-endian), and the receiver rejects it
 * when it differs from its own clock by more than 30 s. Exactly 30 s passes (as ss-rust and
 * ss-go do). The skew is returned so a server can log "clock skew of N s" for a client whose
 * clock is wrong instead of dropping it silently.
 * @module
 */
import { ProtocolError } from "./errors.ts";

/** Largest accepted |peer time − local time|, in seconds. */
export const MAX_TIMESTAMP_SKEW = 30;

/** A timestamp outside ±30 s: a replay or a peer whose clock is wrong. */
export class TimestampError extends ProtocolError {
  /** Peer time minus local time, in seconds: positive when the peer is ahead. */
  readonly skew: number;

  constructor(skew: number) {
    super(
      "ERR_REPLAY",
      `Timestamp rejected: clock skew of ${skew} s exceeds ±${MAX_TIMESTAMP_SKEW} s`,
    );
    this.name = "TimestampError";
    this.skew = skew;
  }
}

/** Unix time in whole seconds for a wall-clock reading in milliseconds. */
export function unixSeconds(nowMs: number = Date.now()): number {
  return Math.floor(nowMs / 1000);
}

/**
 * Checks a peer timestamp (Unix seconds) against the local wall clock (`nowMs`, default
 * `Date.now()`); returns the skew in seconds, or throws `TimestampError` beyond ±30 s.
 */
export function checkTimestamp(timestamp: number, nowMs: number = Date.now()): number {
  const skew = timestamp - unixSeconds(nowMs);
  if (Math.abs(skew) > MAX_TIMESTAMP_SKEW) throw new TimestampError(skew);
  return skew;
}
