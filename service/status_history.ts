/**
 * The status page's memory of the last 15 minutes: a bounded ring of one-second samples, each
 * the rates between two snapshots of the services' cumulative counters, and the per-user
 * counters at the last local midnight, from which "today" is counted. Pure: callers pass the
 * counters and the clock; nothing here reads a socket or a timer.
 *
 * Memory: `capacity` samples (900: 15 minutes at one a second), each with at most `maxUsers`
 * (64) per-user rates, the busiest of that second: about 900 × 64 × 2 numbers at worst, a few
 * megabytes; an idle second holds none. The midnight baseline holds two numbers per user shown.
 * @module
 */
import type { SessionStatus } from "../protocol/errors.ts";

/** How the page groups session outcomes, in chart order. */
export const OUTCOME_GROUPS = ["ok", "probe", "replay", "auth", "timeout", "other"] as const;
export type OutcomeGroup = typeof OUTCOME_GROUPS[number];

/**
 * The group of every status. `probe`: a first flight that did not authenticate or parse (what
 * active probing produces); `replay`: a replayed or stale first flight; `auth`: an application
 * that spoke SOCKS/HTTP wrongly or without the right credentials (local role); `timeout`: the
 * handshake deadline or the idle timeout passed; `other`: target-side failures, blocks,
 * shutdown, bugs.
 */
export const OUTCOME_GROUP_OF: Readonly<Record<SessionStatus, OutcomeGroup>> = {
  OK: "ok",
  ERR_CIPHER: "probe",
  ERR_READ_ADDRESS: "probe",
  ERR_REPLAY: "replay",
  ERR_AUTH: "auth",
  ERR_CLIENT_PROTOCOL: "auth",
  ERR_TIMEOUT: "timeout",
  ERR_TARGET_FORBIDDEN: "other",
  ERR_BLOCKED: "other",
  ERR_RESOLVE: "other",
  ERR_CONNECT: "other",
  ERR_RELAY_CLIENT: "other",
  ERR_RELAY_TARGET: "other",
  ERR_SHUTDOWN: "other",
  ERR_INTERNAL: "other",
};

/** Cumulative counters at one instant: what the feed sends every second. */
export interface Counters {
  /** When they were read (ms since the epoch). */
  at: number;
  /** Plaintext bytes client → target and target → client, TCP and UDP, every listener. */
  up: number;
  down: number;
  /** TCP sessions in progress. */
  live: number;
  /** TCP sessions ended, by `OUTCOME_GROUPS` (same order). */
  outcomes: number[];
  /** Per user (by row key): [up, down] bytes. */
  users: Record<string, [number, number]>;
}

/** What happened in one interval between two `Counters`. */
export interface Sample {
  /** The interval's end, in seconds since the epoch (the chart's x). */
  t: number;
  /** Bytes per second in each direction. */
  up: number;
  down: number;
  /** TCP sessions in progress at the end. */
  live: number;
  /** Sessions ended in the interval, by `OUTCOME_GROUPS`. */
  outcomes: number[];
  /** Bytes per second of the busiest users of the interval (at most `maxUsers`; idle ones left out). */
  users: Record<string, [number, number]>;
}

/**
 * The sample between `prev` and `next`. A counter that went down (cleared through the API, or a
 * listener removed) counts as no traffic for that interval rather than a negative rate.
 *
 * The status page runs this same function in the browser (its source is sent with the page), so
 * it must stay self-contained: no reference to anything outside its own body.
 */
export function sampleBetween(prev: Counters, next: Counters, maxUsers: number): Sample {
  const seconds = Math.max(next.at - prev.at, 1) / 1000;
  const rate = (a: number, b: number) => Math.max(b - a, 0) / seconds;
  const users: Array<[string, [number, number]]> = [];
  for (const key of Object.keys(next.users)) {
    const [up, down] = next.users[key]!;
    const [wasUp, wasDown] = prev.users[key] ?? [0, 0];
    const moved: [number, number] = [rate(wasUp, up), rate(wasDown, down)];
    if (moved[0] + moved[1] > 0) users.push([key, moved]);
  }
  users.sort((a, b) => b[1][0] + b[1][1] - (a[1][0] + a[1][1]));
  return {
    t: Math.round(next.at / 1000),
    up: rate(prev.up, next.up),
    down: rate(prev.down, next.down),
    live: next.live,
    outcomes: next.outcomes.map((n, i) => Math.max(n - (prev.outcomes[i] ?? 0), 0)),
    users: Object.fromEntries(users.slice(0, maxUsers)),
  };
}

/** Samples kept: 15 minutes at one a second. */
export const HISTORY_CAPACITY = 900;
/** Per-user rates kept in one sample (the busiest users of that second). */
export const MAX_USERS_PER_SAMPLE = 64;

/** The last `capacity` samples, oldest overwritten first. */
export class StatusHistory {
  readonly capacity: number;
  readonly maxUsers: number;
  readonly #ring: Array<Sample | undefined>;
  #next = 0;
  #size = 0;
  #last: Counters | undefined;

  constructor(options: { capacity?: number; maxUsers?: number } = {}) {
    this.capacity = options.capacity ?? HISTORY_CAPACITY;
    this.maxUsers = options.maxUsers ?? MAX_USERS_PER_SAMPLE;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`Invalid capacity "${this.capacity}": expected a positive integer`);
    }
    this.#ring = new Array(this.capacity);
  }

  /** The counters last added (the base of the next sample). */
  get last(): Counters | undefined {
    return this.#last;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds the sample from the last counters to `counters` (none for the first call). */
  add(counters: Counters): Sample | undefined {
    const prev = this.#last;
    this.#last = counters;
    if (prev === undefined) return undefined;
    const sample = sampleBetween(prev, counters, this.maxUsers);
    this.#ring[this.#next] = sample;
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.#size + 1, this.capacity);
    return sample;
  }

  /** The samples, oldest first. */
  samples(): Sample[] {
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    const out: Sample[] = [];
    for (let i = 0; i < this.#size; i++) out.push(this.#ring[(start + i) % this.capacity]!);
    return out;
  }
}

/** Local midnight at the start of the day of `at` (ms since the epoch). */
export function localMidnight(at: number): number {
  const day = new Date(at);
  day.setHours(0, 0, 0, 0);
  return day.getTime();
}

/**
 * Per-user bytes "today": since the last local midnight, or since this process began counting
 * when that was later. The counters of each user are remembered at midnight (at the first update
 * of a new day); a user first seen later counts from then. A counter below its baseline (cleared
 * through the API) counts from zero again.
 */
export class DailyCounters {
  #since: number;
  #day: number;
  readonly #base = new Map<string, [number, number]>();

  constructor(now: number) {
    this.#since = now;
    this.#day = localMidnight(now);
  }

  /** Where "today" starts (ms since the epoch). */
  get since(): number {
    return this.#since;
  }

  /**
   * Today's [up, down] for each user of `users` (cumulative [up, down]) at `now`. Forgets users
   * no longer present, so the baseline stays as large as the table.
   */
  update(
    now: number,
    users: Readonly<Record<string, readonly [number, number]>>,
  ): Record<string, [number, number]> {
    const day = localMidnight(now);
    if (day !== this.#day) {
      this.#day = day;
      this.#since = day;
      this.#base.clear();
    }
    const today: Record<string, [number, number]> = {};
    for (const key of Object.keys(users)) {
      const [up, down] = users[key]!;
      let base = this.#base.get(key);
      if (base === undefined || up < base[0] || down < base[1]) {
        // First seen (or first seen today: the baseline is now), or cleared (from zero).
        base = base === undefined ? [up, down] : [0, 0];
        this.#base.set(key, base);
      }
      today[key] = [up - base[0], down - base[1]];
    }
    for (const key of this.#base.keys()) if (!(key in users)) this.#base.delete(key);
    return today;
  }
}
