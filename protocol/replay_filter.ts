/**
 * Remembers recently seen salts (and stream-cipher IVs) so a recorded first flight cannot be
 * replayed, for as long as a busy server needs: at least `capacity` salts, 1 000 000 by default
 * (libev keeps as many), in bounded memory.
 *
 * Two generations of Bloom filters, "ping-pong" as shadowsocks-rust keeps them: inserts go to
 * `current`; when it has taken `capacity` salts it becomes `previous` and a cleared filter takes
 * its place. A salt is therefore remembered for at least the last `capacity` insertions and at
 * most `2 × capacity`.
 *
 * Each generation is sized for a false-positive rate of 1e-6 at `capacity` salts
 * (m = −n·ln p / ln²2 bits, k = m/n·ln 2 probes): 28.8 Mbit = 3.6 MiB and 20 probes for a
 * million salts, 7.2 MiB for both generations (against ~160 MiB for a million salts in a `Set`
 * of strings). A false positive refuses one fresh connection as a replay: with both generations
 * full, about 2 in a million; the client's next connection has another salt and goes through.
 * The probes come from two 32-bit hashes of the salt keyed with a per-process random seed
 * (double hashing), so salts chosen to collide cannot be computed offline.
 * @module
 */

/**
 * What a framing needs of a salt memory: this in-process filter, or the shared-memory one that
 * every worker isolate of a process sees (protocol/shared_replay_store.ts).
 */
export interface ReplayStore {
  /** True when `salt` was seen before (or, rarely, looks so); records it either way. */
  checkAndAdd(salt: Uint8Array): boolean;
  /** Records a salt we generated ourselves, so reflected traffic is refused too. */
  addOwn(salt: Uint8Array): void;
  /** Salts remembered now. */
  readonly size: number;
}

/**
 * The replay half of a fleet of servers (service/fleet.ts's `Fleet`, or a worker's proxy to the
 * main isolate's), checked after the local store: declared here so that a listener does not
 * load the Redis client.
 */
export interface FleetReplayCheck {
  /** "fresh", "replay" or "unavailable". */
  checkSalt(salt: Uint8Array, ttlMs: number): Promise<string>;
  /** Whether a session with this check result is refused. */
  refuses(check: string): boolean;
}

/** Default number of salts per generation (libev's and rust's order of magnitude). */
export const DEFAULT_REPLAY_CAPACITY = 1_000_000;
/** False-positive rate each generation is sized for. */
export const REPLAY_FALSE_POSITIVE_RATE = 1e-6;

/** One Bloom filter generation. */
class BloomGeneration {
  readonly bits: Uint32Array;
  readonly bitCount: number;
  count = 0;

  constructor(bitCount: number) {
    this.bitCount = bitCount;
    this.bits = new Uint32Array(Math.ceil(bitCount / 32));
  }

  has(h1: number, h2: number, probes: number): boolean {
    for (let i = 0; i < probes; i++) {
      const bit = (h1 + Math.imul(i, h2) >>> 0) % this.bitCount;
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }

  add(h1: number, h2: number, probes: number): void {
    for (let i = 0; i < probes; i++) {
      const bit = (h1 + Math.imul(i, h2) >>> 0) % this.bitCount;
      this.bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    this.count++;
  }

  clear(): void {
    this.bits.fill(0);
    this.count = 0;
  }
}

export class ReplayFilter implements ReplayStore {
  readonly #capacity: number;
  readonly #probes: number;
  readonly #seed1: number;
  readonly #seed2: number;
  #current: BloomGeneration;
  #previous: BloomGeneration;

  constructor(capacity: number = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Invalid replay filter capacity ${capacity}: expected a positive integer`,
      );
    }
    this.#capacity = capacity;
    const { bitCount, probes } = bloomSize(capacity);
    this.#probes = probes;
    this.#current = new BloomGeneration(bitCount);
    this.#previous = new BloomGeneration(bitCount);
    const seeds = crypto.getRandomValues(new Uint32Array(2));
    this.#seed1 = seeds[0]!;
    this.#seed2 = seeds[1]!;
  }

  /** Salts remembered now (inserted into either generation; for tests and metrics). */
  get size(): number {
    return this.#current.count + this.#previous.count;
  }

  /** Bytes the two generations hold. */
  get byteLength(): number {
    return this.#current.bits.byteLength + this.#previous.bits.byteLength;
  }

  /** True when `salt` was seen before (or, rarely, looks so); records it either way. */
  checkAndAdd(salt: Uint8Array): boolean {
    const [h1, h2] = this.#hash(salt);
    if (
      this.#current.has(h1, h2, this.#probes) || this.#previous.has(h1, h2, this.#probes)
    ) return true;
    this.#add(h1, h2);
    return false;
  }

  /** Records a salt we generated ourselves, so reflected traffic is refused too. */
  addOwn(salt: Uint8Array): void {
    const [h1, h2] = this.#hash(salt);
    this.#add(h1, h2);
  }

  #add(h1: number, h2: number): void {
    if (this.#current.count >= this.#capacity) {
      const recycled = this.#previous;
      recycled.clear();
      this.#previous = this.#current;
      this.#current = recycled;
    }
    this.#current.add(h1, h2, this.#probes);
  }

  #hash(salt: Uint8Array): [number, number] {
    return saltHash(salt, this.#seed1, this.#seed2);
  }
}

/** Bits and probes of one generation for `capacity` salts at `REPLAY_FALSE_POSITIVE_RATE`. */
export function bloomSize(capacity: number): { bitCount: number; probes: number } {
  const ln2 = Math.LN2;
  const bitCount = Math.max(
    64,
    Math.ceil(-capacity * Math.log(REPLAY_FALSE_POSITIVE_RATE) / (ln2 * ln2)),
  );
  return { bitCount, probes: Math.max(1, Math.round((bitCount / capacity) * ln2)) };
}

/**
 * Two keyed 32-bit hashes of `salt` (FNV-1a style mixing with murmur3's finalizer), the second
 * odd, for double hashing.
 */
export function saltHash(salt: Uint8Array, seed1: number, seed2: number): [number, number] {
  let a = seed1 ^ 0x811c9dc5;
  let b = seed2 ^ 0x01000193;
  for (let i = 0; i < salt.length; i++) {
    a = Math.imul(a ^ salt[i]!, 0x01000193);
    b = Math.imul(b ^ salt[i]!, 0x5bd1e995);
  }
  return [fmix(a), fmix(b ^ salt.length) | 1];
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
