/**
 * The bounded table of UDP associations: client key → association (its outbound socket and
 * bookkeeping), kept in least-recently-used order.
 *
 * Capacity and eviction rule:
 * - at most `capacity` entries. Adding a new key to a full table first closes and removes the
 *   least recently used entry (reason `"lru"`), so a flood of new source ports costs at most
 *   `capacity` open associations and can only push out the quietest clients;
 * - an entry not used (looked up with `get` or `touch`) for `idleMs` by the table's clock is
 *   closed and removed (reason `"idle"`): by `sweep()`, which the optional timer runs every
 *   `sweepIntervalMs`, or lazily when its key is looked up.
 *
 * Recency and last use move together, so the Map's insertion order is the expiry order and a
 * sweep stops at the first entry that is still fresh. The clock is injectable (`now`) so tests
 * expire entries without sleeping.
 * @module
 */

/** Anything the table owns: removing an entry closes it. */
export interface NatEntry {
  close(): void;
}

/** Why an entry left the table. */
export type RemovalReason = "lru" | "idle" | "deleted" | "closed";

export interface NatTableOptions<T> {
  /** Maximum number of entries (a positive integer). */
  capacity: number;
  /** Entries idle this long (milliseconds) expire. */
  idleMs: number;
  /** The clock, in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** Runs `sweep()` on a timer this often (ms); 0 disables the timer. Default 0. */
  sweepIntervalMs?: number;
  /** Called after an entry has been removed and closed. */
  onRemove?: (key: string, entry: T, reason: RemovalReason) => void;
}

interface Slot<T> {
  readonly entry: T;
  lastUsed: number;
}

export class NatTable<T extends NatEntry> implements Disposable {
  readonly #slots = new Map<string, Slot<T>>();
  readonly #capacity: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  readonly #onRemove: ((key: string, entry: T, reason: RemovalReason) => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: NatTableOptions<T>) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) {
      throw new RangeError(
        `Invalid NAT table capacity ${options.capacity}: expected a positive integer`,
      );
    }
    if (!(options.idleMs > 0)) {
      throw new RangeError(`Invalid NAT idle timeout ${options.idleMs}: expected a positive time`);
    }
    this.#capacity = options.capacity;
    this.#idleMs = options.idleMs;
    this.#now = options.now ?? Date.now;
    this.#onRemove = options.onRemove;
    const interval = options.sweepIntervalMs ?? 0;
    if (interval > 0) this.#timer = setInterval(() => this.sweep(), interval);
  }

  get capacity(): number {
    return this.#capacity;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** Keys from least to most recently used (for tests and stats). */
  keys(): string[] {
    return [...this.#slots.keys()];
  }

  /** The live entry for `key`, marked as just used; an expired one is removed instead. */
  get(key: string): T | undefined {
    const slot = this.#slots.get(key);
    if (!slot) return undefined;
    const now = this.#now();
    if (now - slot.lastUsed >= this.#idleMs) {
      this.#remove(key, slot, "idle");
      return undefined;
    }
    this.#markUsed(key, slot, now);
    return slot.entry;
  }

  /** The live entry for `key` without marking it used (codecs look sessions up with it). */
  peek(key: string): T | undefined {
    const slot = this.#slots.get(key);
    return slot !== undefined && this.#now() - slot.lastUsed < this.#idleMs
      ? slot.entry
      : undefined;
  }

  /** True when `key` holds a live entry; does not count as a use. */
  has(key: string): boolean {
    const slot = this.#slots.get(key);
    return slot !== undefined && this.#now() - slot.lastUsed < this.#idleMs;
  }

  /** Marks `entry` as just used if it is still the one stored under `key` (replies do this). */
  touch(key: string, entry: T): void {
    const slot = this.#slots.get(key);
    if (slot?.entry === entry) this.#markUsed(key, slot, this.#now());
  }

  /**
   * Stores `entry` under `key` as the most recently used. An entry already under `key` is
   * closed; a full table first evicts its least recently used entry. After `close()` the
   * entry is closed at once instead.
   */
  set(key: string, entry: T): void {
    if (this.#closed) {
      entry.close();
      this.#onRemove?.(key, entry, "closed");
      return;
    }
    const existing = this.#slots.get(key);
    if (existing) this.#remove(key, existing, "deleted");
    if (this.#slots.size >= this.#capacity) {
      const [oldestKey, oldest] = this.#slots.entries().next().value!;
      this.#remove(oldestKey, oldest, "lru");
    }
    this.#slots.set(key, { entry, lastUsed: this.#now() });
  }

  /** Closes and removes the entry under `key` if it is `entry` (or any entry, without one). */
  delete(key: string, entry?: T): boolean {
    const slot = this.#slots.get(key);
    if (!slot || (entry !== undefined && slot.entry !== entry)) return false;
    this.#remove(key, slot, "deleted");
    return true;
  }

  /** Closes and removes every entry idle for `idleMs` or longer; returns how many. */
  sweep(): number {
    const now = this.#now();
    let removed = 0;
    for (const [key, slot] of this.#slots) {
      if (now - slot.lastUsed < this.#idleMs) break;
      this.#remove(key, slot, "idle");
      removed++;
    }
    return removed;
  }

  /** Stops the sweep timer and closes every entry. Idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const [key, slot] of this.#slots) this.#remove(key, slot, "closed");
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #markUsed(key: string, slot: Slot<T>, now: number): void {
    slot.lastUsed = now;
    this.#slots.delete(key);
    this.#slots.set(key, slot);
  }

  #remove(key: string, slot: Slot<T>, reason: RemovalReason): void {
    this.#slots.delete(key);
    try {
      slot.entry.close();
    } finally {
      this.#onRemove?.(key, slot.entry, reason);
    }
  }
}
