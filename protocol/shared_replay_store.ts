/**
 * The replay memory of a server that runs in several isolates (service/workers.ts): the
 * AEAD-2017 salt filter and the 2022 salt pool, both in one `SharedArrayBuffer` that every
 * isolate attaches to, so a first flight replayed to another worker is refused as it would be
 * by the one that saw it. Same interfaces as the in-process stores (`ReplayStore`,
 * `SaltStore`), same sizes and guarantees:
 *
 * ```
 * byte 0    header: Int32 words (two locks, generation indexes, counts, hash seeds,
 *           capacities), then Float64 start times of the 2022 generations
 * 128       AEAD-2017 filter: two blocked Bloom generations of 32 Int32 words per block
 * …         2022 pool: two hash tables of `slots` slots, a slot = 9 Int32 words:
 *           [salt length (0: empty)] [salt, 32 bytes, zero-padded]
 * ```
 *
 * Each store has its own lock (an Int32 word driven by `Atomics.compareExchange`, with
 * `Atomics.wait` once a short spin fails). A check-and-add runs under it, so two copies of one
 * salt arriving at two workers in the same microsecond cannot both pass: a lock-free Bloom
 * filter cannot promise that (each copy may set some of the bits first). The critical section is
 * 18 probes in one block or a few slot reads, well under a microsecond; a rotation clears one
 * generation under the lock, 4.2 MiB once per million AEAD salts, and at most one 2022 table
 * per 61 s.
 *
 * AEAD-2017 filter: exactly protocol/replay_filter.ts's rule. Two count-rotated generations of
 * `filterCapacity` salts (default 1 000 000) under 1e-6 false positives each: a salt is remembered
 * for at least the last `filterCapacity` insertions and at most twice that; with both full, about
 * 2 fresh salts in a million are refused (the client's retry has another salt). 8.3 MiB.
 *
 * 2022 pool: exact, no false positives. Two generations of hash tables, rotated by time: a
 * salt goes into the current one; when the current one is 61 s old (`SALT_RETENTION_MS`) it
 * becomes the previous one and the old previous one is cleared. A salt is therefore held for
 * at least 61 s and at most about 122 s. When the current generation holds `poolCapacity`
 * salts (default 100 000) before it is 61 s old, new salts are refused (`"full"`): fail closed,
 * as protocol/salt_pool.ts does, which sustains the same 100 000 / 61 s ≈ 1 640 new 2022
 * sessions per second. Tables are filled to at most 3/4 (linear probing): 2 × 133 334 slots of
 * 36 bytes, 9.6 MB.
 *
 * Time of the pool is the wall clock (`Date.now`), which every isolate reads alike, and the same
 * clock the 2022 timestamp check uses: a request stamped T passes only while the clock reads
 * less than T + 31 s, and its salt is held until the clock reads more than T + 61 s. A clock step
 * forward moves both; a step back keeps the generations (a step back past the generation start
 * holds the current one until the clock catches up, refusing new salts if it fills meanwhile).
 * @module
 */
import {
  BLOCK_WORDS,
  bloomAdd,
  bloomBlocks,
  bloomHas,
  DEFAULT_REPLAY_CAPACITY,
  type ReplayStore,
  saltHash,
} from "./replay_filter.ts";
import {
  DEFAULT_SALT_POOL_CAPACITY,
  SALT_RETENTION_MS,
  type SaltCheck,
  type SaltStore,
} from "./salt_pool.ts";

/** Header words (Int32 indexes). */
const FILTER_LOCK = 0;
const POOL_LOCK = 1;
const FILTER_CURRENT = 2;
/** Counts of the two filter generations: words 3 and 4. */
const FILTER_COUNT = 3;
const SEED1 = 5;
const SEED2 = 6;
const POOL_CURRENT = 7;
/** Counts of the two pool generations: words 8 and 9. */
const POOL_COUNT = 8;
const FILTER_CAPACITY = 10;
const POOL_CAPACITY = 11;
const MAGIC = 12;
/** Float64 index of the pool generations' start times (bytes 64 and 72). */
const POOL_START = 8;
const HEADER_BYTES = 128;
const MAGIC_VALUE = 0x5352_5301;

/** Longest salt the pool takes (the 2022 methods' salts are 16 or 32 bytes). */
const MAX_SALT = 32;
const SLOT_WORDS = 1 + MAX_SALT / 4;
/** Highest fill of a pool table: linear probing stays short (≈ 8.5 probes for a miss). */
const MAX_LOAD = 0.75;
/** Lock attempts before waiting. */
const SPINS = 64;

/** Options of {@linkcode SharedReplayStore}. */
export interface SharedReplayStoreOptions {
  /**
   * The memory of a store made in another isolate (its `buffer`): use it instead of making a
   * new one; the capacities are then read from it.
   */
  buffer?: SharedArrayBuffer;
  /** AEAD-2017 salts per filter generation. Default `DEFAULT_REPLAY_CAPACITY` (1 000 000). */
  filterCapacity?: number;
  /** 2022 salts per pool generation. Default `DEFAULT_SALT_POOL_CAPACITY` (100 000). */
  poolCapacity?: number;
  /** Wall clock of the pool in milliseconds, for tests. Default: `Date.now`. */
  now?: () => number;
}

/** Byte positions of the two stores in the buffer. */
interface Layout {
  filterWords: number;
  filterAt: number;
  slots: number;
  poolAt: number;
  byteLength: number;
}

function layoutOf(filterCapacity: number, poolCapacity: number): Layout {
  const filterWords = bloomBlocks(filterCapacity) * BLOCK_WORDS;
  const slots = Math.ceil(poolCapacity / MAX_LOAD);
  const filterAt = HEADER_BYTES;
  const poolAt = filterAt + 2 * filterWords * 4;
  return { filterWords, filterAt, slots, poolAt, byteLength: poolAt + 2 * slots * SLOT_WORDS * 4 };
}

function checkCapacity(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fff_ffff) {
    throw new RangeError(`Invalid ${name} ${value}: expected a positive integer`);
  }
  return value;
}

/**
 * The AEAD-2017 filter and the 2022 pool over one `SharedArrayBuffer`: made here, or, given
 * `buffer`, the one another isolate made (post it `buffer`).
 */
export class SharedReplayStore {
  /** The memory to hand to other isolates. */
  readonly buffer: SharedArrayBuffer;
  /** AEAD-2017 salts and stream-cipher IVs (`serverFramings`'s `replayFilter`). */
  readonly filter: ReplayStore;
  /** 2022 salts (`serverFramings`'s `saltPool`). */
  readonly pool: SaltStore & { has(salt: Uint8Array): boolean };

  constructor(options: SharedReplayStoreOptions = {}) {
    const now = options.now ?? Date.now;
    const buffer = options.buffer ?? create(options, now);
    const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    if (buffer.byteLength < HEADER_BYTES || Atomics.load(header, MAGIC) !== MAGIC_VALUE) {
      throw new RangeError("Invalid shared replay store: the buffer was not made by one");
    }
    const filterCapacity = header[FILTER_CAPACITY]!;
    const poolCapacity = header[POOL_CAPACITY]!;
    const layout = layoutOf(filterCapacity, poolCapacity);
    if (buffer.byteLength !== layout.byteLength) {
      throw new RangeError(
        `Invalid shared replay store: ${buffer.byteLength} bytes, expected ${layout.byteLength}`,
      );
    }
    this.buffer = buffer;
    this.filter = new SharedFilter(buffer, layout, filterCapacity);
    this.pool = new SharedPool(buffer, layout, poolCapacity, now);
  }

  /** Bytes of shared memory it takes. */
  get byteLength(): number {
    return this.buffer.byteLength;
  }
}

/** A new buffer with its header written: seeds, capacities, the first generation's start. */
function create(options: SharedReplayStoreOptions, now: () => number): SharedArrayBuffer {
  const filterCapacity = checkCapacity(
    options.filterCapacity ?? DEFAULT_REPLAY_CAPACITY,
    "filter capacity",
  );
  const poolCapacity = checkCapacity(
    options.poolCapacity ?? DEFAULT_SALT_POOL_CAPACITY,
    "salt pool capacity",
  );
  const buffer = new SharedArrayBuffer(layoutOf(filterCapacity, poolCapacity).byteLength);
  const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  const seeds = crypto.getRandomValues(new Int32Array(2));
  header[SEED1] = seeds[0]!;
  header[SEED2] = seeds[1]!;
  header[FILTER_CAPACITY] = filterCapacity;
  header[POOL_CAPACITY] = poolCapacity;
  new Float64Array(buffer, 0, HEADER_BYTES / 8)[POOL_START] = now();
  // The filter generation salts go into first is held from the start, as in
  // protocol/replay_filter.ts (its pages would otherwise be taken one salt at a time).
  const layout = layoutOf(filterCapacity, poolCapacity);
  new Int32Array(buffer, layout.filterAt, layout.filterWords).fill(0);
  Atomics.store(header, MAGIC, MAGIC_VALUE);
  return buffer;
}

/** Takes the lock word `index`: 0 free, 1 held, 2 held with waiters (Drepper's mutex). */
function lock(header: Int32Array, index: number): void {
  let state = Atomics.compareExchange(header, index, 0, 1);
  for (let spin = 0; state !== 0 && spin < SPINS; spin++) {
    state = Atomics.compareExchange(header, index, 0, 1);
  }
  if (state === 0) return;
  if (state !== 2) state = Atomics.exchange(header, index, 2);
  while (state !== 0) {
    // Sleeps until the holder's unlock wakes it; the 1 ms bound is a belt to the braces.
    Atomics.wait(header, index, 2, 1);
    state = Atomics.exchange(header, index, 2);
  }
}

function unlock(header: Int32Array, index: number): void {
  if (Atomics.sub(header, index, 1) !== 1) {
    Atomics.store(header, index, 0);
    Atomics.notify(header, index, 1);
  }
}

/** The AEAD-2017 filter: two Bloom generations, count-rotated, under `FILTER_LOCK`. */
class SharedFilter implements ReplayStore {
  readonly #header: Int32Array;
  readonly #generations: [Int32Array, Int32Array];
  readonly #blocks: number;
  readonly #capacity: number;

  constructor(buffer: SharedArrayBuffer, layout: Layout, capacity: number) {
    this.#header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.#blocks = bloomBlocks(capacity);
    this.#capacity = capacity;
    const at = (i: number) => layout.filterAt + i * layout.filterWords * 4;
    this.#generations = [
      new Int32Array(buffer, at(0), layout.filterWords),
      new Int32Array(buffer, at(1), layout.filterWords),
    ];
  }

  get size(): number {
    return Atomics.load(this.#header, FILTER_COUNT) + Atomics.load(this.#header, FILTER_COUNT + 1);
  }

  checkAndAdd(salt: Uint8Array): boolean {
    const [h1, h2] = this.#hash(salt);
    lock(this.#header, FILTER_LOCK);
    try {
      const current = this.#header[FILTER_CURRENT]!;
      if (this.#has(current, h1, h2) || this.#has(1 - current, h1, h2)) return true;
      this.#add(h1, h2);
      return false;
    } finally {
      unlock(this.#header, FILTER_LOCK);
    }
  }

  addOwn(salt: Uint8Array): void {
    const [h1, h2] = this.#hash(salt);
    lock(this.#header, FILTER_LOCK);
    try {
      this.#add(h1, h2);
    } finally {
      unlock(this.#header, FILTER_LOCK);
    }
  }

  #hash(salt: Uint8Array): [number, number] {
    return saltHash(salt, this.#header[SEED1]!, this.#header[SEED2]!);
  }

  /**
   * Under the lock, as `#add` is: plain reads and writes, which the lock's atomic operations
   * order between isolates (an `Atomics` call per probe cost a builtin call each).
   */
  #has(generation: number, h1: number, h2: number): boolean {
    return bloomHas(this.#generations[generation]!, this.#blocks, h1, h2);
  }

  /** Under the lock: into the current generation, rotating first when it is full. */
  #add(h1: number, h2: number): void {
    const header = this.#header;
    let current = header[FILTER_CURRENT]!;
    if (header[FILTER_COUNT + current]! >= this.#capacity) {
      current = 1 - current;
      // The old previous generation: its salts are now more than `capacity` insertions old.
      this.#generations[current]!.fill(0);
      Atomics.store(header, FILTER_COUNT + current, 0);
      Atomics.store(header, FILTER_CURRENT, current);
    }
    bloomAdd(this.#generations[current]!, this.#blocks, h1, h2);
    Atomics.add(header, FILTER_COUNT + current, 1);
  }
}

/** The 2022 pool: two exact hash tables, time-rotated, under `POOL_LOCK`. */
class SharedPool implements SaltStore {
  readonly capacity: number;
  readonly #header: Int32Array;
  readonly #starts: Float64Array;
  readonly #tables: [Int32Array, Int32Array];
  readonly #slots: number;
  readonly #now: () => number;
  /** The salt being looked up, as words (zero-padded), reused between calls. */
  readonly #key = new Int32Array(MAX_SALT / 4);
  readonly #keyBytes = new Uint8Array(this.#key.buffer);

  constructor(buffer: SharedArrayBuffer, layout: Layout, capacity: number, now: () => number) {
    this.capacity = capacity;
    this.#header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.#starts = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    this.#slots = layout.slots;
    const words = layout.slots * SLOT_WORDS;
    this.#tables = [
      new Int32Array(buffer, layout.poolAt, words),
      new Int32Array(buffer, layout.poolAt + words * 4, words),
    ];
    this.#now = now;
  }

  /** Salts held in both generations (the previous one's may be past 61 s already). */
  get size(): number {
    return Atomics.load(this.#header, POOL_COUNT) + Atomics.load(this.#header, POOL_COUNT + 1);
  }

  checkAndAdd(salt: Uint8Array): SaltCheck {
    const h = this.#prepare(salt);
    lock(this.#header, POOL_LOCK);
    try {
      const current = this.#rotate(this.#now());
      // Not found, the probe ends at the empty slot the salt goes to (nothing moves meanwhile:
      // the lock is held), so the current table is probed once.
      const found = this.#find(current, h, salt.length);
      if (found >= 0) return "duplicate";
      if (this.#find(1 - current, h, salt.length) >= 0) return "duplicate";
      if (this.#header[POOL_COUNT + current]! >= this.capacity) return "full";
      const slot = ~found;
      const table = this.#tables[current]!;
      const at = slot * SLOT_WORDS;
      for (let i = 0; i < this.#key.length; i++) table[at + 1 + i] = this.#key[i]!;
      table[at] = salt.length;
      Atomics.add(this.#header, POOL_COUNT + current, 1);
      return "added";
    } finally {
      unlock(this.#header, POOL_LOCK);
    }
  }

  /** True when `salt` is held (in either generation). Does not store. */
  has(salt: Uint8Array): boolean {
    const h = this.#prepare(salt);
    lock(this.#header, POOL_LOCK);
    try {
      const current = this.#rotate(this.#now());
      return this.#find(current, h, salt.length) >= 0 ||
        this.#find(1 - current, h, salt.length) >= 0;
    } finally {
      unlock(this.#header, POOL_LOCK);
    }
  }

  /** Copies `salt` into the key words; returns its table hash. */
  #prepare(salt: Uint8Array): number {
    if (salt.length === 0 || salt.length > MAX_SALT) {
      throw new RangeError(`Invalid salt length ${salt.length}: expected 1 to ${MAX_SALT} bytes`);
    }
    this.#key.fill(0);
    this.#keyBytes.set(salt);
    return saltHash(salt, this.#header[SEED1]!, this.#header[SEED2]!)[0];
  }

  /** Under the lock: the current generation, after a rotation when it is 61 s old. */
  #rotate(now: number): number {
    const header = this.#header;
    const current = header[POOL_CURRENT]!;
    if (now - this.#starts[POOL_START + current]! < SALT_RETENTION_MS) return current;
    // The old previous generation took its last salt before the current one started, more
    // than 61 s ago: none of its requests can pass the timestamp check any more.
    const next = 1 - current;
    this.#tables[next]!.fill(0);
    Atomics.store(header, POOL_COUNT + next, 0);
    this.#starts[POOL_START + next] = now;
    Atomics.store(header, POOL_CURRENT, next);
    return next;
  }

  /** The slot holding the key in `generation`, or `~slot` of the empty slot that ends the probe. */
  #find(generation: number, hash: number, length: number): number {
    const table = this.#tables[generation]!;
    const key = this.#key;
    for (let probe = 0, slot = hash % this.#slots; probe < this.#slots; probe++) {
      const at = slot * SLOT_WORDS;
      const tag = table[at]!;
      if (tag === 0) return ~slot;
      if (tag === length) {
        let same = true;
        for (let i = 0; i < key.length && same; i++) same = table[at + 1 + i] === key[i];
        if (same) return slot;
      }
      slot = slot + 1 === this.#slots ? 0 : slot + 1;
    }
    // Never reached: a table is at most 3/4 full, so a probe always meets an empty slot.
    throw new RangeError("Invalid shared salt table: no empty slot");
  }
}
