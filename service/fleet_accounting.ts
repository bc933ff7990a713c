/**
 * Fleet accounting: bytes per user counted in this process, published to Redis as one
 * cumulative number per node, and the fleet's totals read back (service/fleet.ts sends them).
 *
 * Why cumulative numbers and not increments: a flush whose reply is lost (the connection dropped
 * after Redis applied it) is simply sent again, and "set my field to 5 000 unless it already
 * holds 5 000 or more" applied twice is applied once. The same property makes recovery from a
 * Redis that restarted empty exact: every node sends its whole count again. Increments would
 * need an idempotency key per batch, kept in Redis, and would still lose everything Redis lost.
 *
 * ```
 * key   <prefix>:usage:<user>                     (one hash per user: one slot in a cluster)
 * field total                                     sum of the node fields, kept by the script
 * field n:<node>  "<boot> <base> <cumulative>"    boot: random id of the node's process;
 *                                                 base: bytes of its earlier processes
 * ```
 *
 * A node's process restarts with a new boot id and counts from zero: the script folds the old
 * process's bytes into `base` the first time the new boot writes, so the field keeps one line per
 * node however often it restarts. (Two live processes sharing a node name would fold each
 * other's counts again and again: the heartbeat warns about that.)
 * @module
 */

/**
 * Applies one node's cumulative count for one user and returns the user's fleet total.
 *
 * KEYS[1] = the user's usage hash; ARGV = node field, boot id, cumulative bytes of this boot.
 * Counts are integers below 2^53 (9 PB), exact in Lua's doubles; `%.0f` keeps them out of
 * exponent notation.
 */
export const APPLY_USAGE_LUA = `
local field, boot, cum = ARGV[1], ARGV[2], tonumber(ARGV[3])
local before, base = 0, 0
local old = redis.call('HGET', KEYS[1], field)
if old then
  local oldBoot, oldBase, oldCum = string.match(old, '^(%S+) (%d+) (%d+)$')
  oldBase, oldCum = tonumber(oldBase), tonumber(oldCum)
  before = oldBase + oldCum
  if oldBoot == boot then
    if cum <= oldCum then
      return tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
    end
    base = oldBase
  else
    base = before
  end
end
redis.call('HSET', KEYS[1], field,
  boot .. ' ' .. string.format('%.0f', base) .. ' ' .. string.format('%.0f', cum))
return redis.call('HINCRBY', KEYS[1], 'total', string.format('%.0f', base + cum - before))
`;

/** One user's numbers in this process. */
interface Entry {
  /** Bytes counted by this process (only grows). */
  counted: number;
  /** The largest `counted` Redis acknowledged since the last data loss. */
  flushed: number;
  /** The fleet total last read from Redis (0 before the first read). */
  total: number;
  /** How much of `total` was this process's own count when it was read. */
  ownInTotal: number;
  /** The user's total is refreshed on every flush (until `untrack`: no data limit needs it). */
  tracked: boolean;
}

/** One pending write: the user and the cumulative count to publish. */
export interface PendingCount {
  readonly user: string;
  readonly counted: number;
}

/**
 * The local side of fleet accounting: what this process counted, what Redis acknowledged and
 * the fleet totals last seen; no I/O. One entry per user ever counted or asked about in this
 * process (a few numbers each, kept: a count is cumulative per process, and starting a user's
 * again from zero would make Redis ignore it); totals are read only for tracked users.
 */
export class UsageLedger {
  readonly #entries = new Map<string, Entry>();

  #entry(user: string): Entry {
    let entry = this.#entries.get(user);
    if (entry === undefined) {
      // Tracked from the start: whoever counts a user here usually wants their total too.
      entry = { counted: 0, flushed: 0, total: 0, ownInTotal: 0, tracked: true };
      this.#entries.set(user, entry);
    }
    return entry;
  }

  /** Counts `bytes` more for `user`. */
  add(user: string, bytes: number): void {
    if (!(bytes > 0)) return;
    this.#entry(user).counted += bytes;
  }

  /** Makes `user`'s fleet total refresh on every flush, although this process counts nothing. */
  track(user: string): void {
    this.#entry(user).tracked = true;
  }

  /** Stops refreshing `user`'s total (no data limit asks about it any more). */
  untrack(user: string): void {
    const entry = this.#entries.get(user);
    if (entry) entry.tracked = false;
  }

  /** Users whose count Redis has not acknowledged, with the number to send. */
  pending(): PendingCount[] {
    const out: PendingCount[] = [];
    for (const [user, entry] of this.#entries) {
      if (entry.counted > entry.flushed) out.push({ user, counted: entry.counted });
    }
    return out;
  }

  /** The tracked users: whose totals a flush refreshes. */
  users(): string[] {
    return [...this.#entries].filter(([, entry]) => entry.tracked).map(([user]) => user);
  }

  /** Redis applied `counted` for `user` (or a larger count) and the fleet total is `total`. */
  acknowledge(user: string, counted: number, total: number): void {
    const entry = this.#entry(user);
    entry.flushed = Math.max(entry.flushed, counted);
    entry.total = total;
    entry.ownInTotal = counted;
  }

  /** The fleet total read from Redis, which holds this process's acknowledged count. */
  refresh(user: string, total: number): void {
    const entry = this.#entry(user);
    entry.total = total;
    entry.ownInTotal = entry.flushed;
  }

  /** Redis lost its data: every count must be sent again in full. */
  forgetAcknowledged(): void {
    for (const entry of this.#entries.values()) entry.flushed = 0;
  }

  /** Fleet total as best known: the last total read, plus what this process counted since. */
  estimate(user: string): number {
    const entry = this.#entries.get(user);
    return entry === undefined ? 0 : entry.total - entry.ownInTotal + entry.counted;
  }

  /** Bytes counted here that Redis has not acknowledged (what a crash now would lose). */
  unacknowledged(): number {
    let sum = 0;
    for (const entry of this.#entries.values()) sum += entry.counted - entry.flushed;
    return sum;
  }
}
