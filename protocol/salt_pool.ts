/**
 * The exact salt store SIP022 requires on the server: every request salt whose first chunk
 * authenticated is kept for at least 60 s (twice the 30 s timestamp tolerance), so a request is
 * remembered for as long as a copy of it can still pass the timestamp check. No probabilistic
 * structure: a salt is either stored or the session is refused.
 *
 * Retention is 61 s, not 60: timestamps are whole seconds and the check compares them with the
 * floor of the local time, so a request stamped T passes from local time T − 30 s up to just
 * before T + 31 s, a span of 61 s.
 *
 * Capacity: `capacity` salts at once (default 100 000). A salt takes one `Map` entry, a 16- or
 * 32-character one-byte string plus a number, about 100 bytes in V8, so the default costs about
 * 10 MiB and sustains 100 000 / 61 s ≈ 1 640 new sessions per second.
 *
 * When full, the pool first drops expired salts; if it is still full it refuses the new
 * salt ("full") and keeps every stored one. Forgetting a salt early would let a recorded first
 * flight be replayed while its timestamp still passes, which is exactly what the store exists to stop;
 * refusing fails closed, and only clients holding a valid PSK can add salts (the caller adds a
 * salt only after its fixed header authenticated), so the refusal hits load, not strangers.
 *
 * Time is a monotonic clock in milliseconds (`performance.now()` by default, injectable), not
 * the wall clock, so a wall-clock step cannot shorten retention.
 * @module
 */

/** How long a salt is remembered: the 60 s of SIP022 plus one second of timestamp rounding. */
export const SALT_RETENTION_MS = 61_000;
/** Default number of salts held at once. */
export const DEFAULT_SALT_POOL_CAPACITY = 100_000;

/** Options of {@linkcode SaltPool}. */
export interface SaltPoolOptions {
  /** Maximum salts held at once. Default: `DEFAULT_SALT_POOL_CAPACITY` (100 000). */
  capacity?: number;
  /** Monotonic clock in milliseconds. Default: `performance.now()`. */
  now?: () => number;
}

/** What {@linkcode SaltPool.checkAndAdd} decided. */
export type SaltCheck =
  /** New salt, now stored. */
  | "added"
  /** Seen within the retention window: a replay. */
  | "duplicate"
  /** New, but the pool is full of live salts: refuse the session. */
  | "full";

/**
 * What the 2022 framing needs of a salt memory: this pool, or the shared-memory one that every
 * worker isolate of a process sees (protocol/shared_replay_store.ts).
 */
export interface SaltStore {
  /** Checks `salt` against the retention window and stores it when new and there is room. */
  checkAndAdd(salt: Uint8Array): SaltCheck;
  /** Salts held now. */
  readonly size: number;
  /** Most salts it holds (the shared store: per generation). */
  readonly capacity: number;
}

/** Remembers salts for 61 s, exactly, within a fixed capacity. */
export class SaltPool implements SaltStore {
  readonly #capacity: number;
  readonly #now: () => number;
  /** Salt → time it expires. Insertion order is expiry order, as the clock never goes back. */
  readonly #expiries = new Map<string, number>();

  constructor(options: SaltPoolOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_SALT_POOL_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Invalid salt pool capacity ${capacity}: expected a positive integer`);
    }
    this.#capacity = capacity;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Salts currently held (expired ones may linger until the next call). */
  get size(): number {
    return this.#expiries.size;
  }

  /** The configured capacity. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Checks `salt` against the retention window and stores it when new and there is room. */
  checkAndAdd(salt: Uint8Array): SaltCheck {
    const now = this.#now();
    this.#prune(now);
    const key = String.fromCharCode(...salt);
    if (this.#expiries.has(key)) return "duplicate";
    if (this.#expiries.size >= this.#capacity) return "full";
    this.#expiries.set(key, now + SALT_RETENTION_MS);
    return "added";
  }

  /** True when `salt` is held and not yet expired. Does not store. */
  has(salt: Uint8Array): boolean {
    this.#prune(this.#now());
    return this.#expiries.has(String.fromCharCode(...salt));
  }

  #prune(now: number): void {
    for (const [key, expiry] of this.#expiries) {
      if (expiry > now) return;
      this.#expiries.delete(key);
    }
  }
}
