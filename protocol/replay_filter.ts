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
 * Each generation is a blocked Bloom filter sized for a false-positive rate under 1e-6 at
 * `capacity` salts: all 18 probes of a salt fall in one block of 1024 bits (two adjacent cache
 * lines) chosen by the salt, at 35 bits per salt. That is 4.2 MiB for a million salts, 8.3 MiB
 * for both generations (against ~160 MiB for a million salts in a `Set` of strings). A classic
 * Bloom filter needs 28.8 bits per salt for the same rate, but its 20 probes land on 20 cache
 * lines: inserting a salt then cost a server about 2 % of its CPU per connection, on cache
 * misses alone, and a connection inserts two (perf, bench/throughput.ts setup). The blocks'
 * uneven fill is what the extra bits pay for: with X salts in a block (Poisson, mean 1024/35)
 * and D distinct positions among a salt's 18 draws, the rate is E[(1 − (1 − 1/1024)^(18X))^D]
 * = 7.6e-7 (34 bits would give 1.03e-6). A false positive refuses one fresh connection as a
 * replay: with both generations full, about 2 in a million; the client's next connection has
 * another salt and goes through.
 *
 * The generation that takes the salts is written once when it starts, so the process holds its
 * memory from then on: left to the salts, its pages would be taken one per salt over the first
 * few thousand connections, and that growth would read as per-connection memory.
 * The block and the probes come from two 32-bit hashes of the salt keyed with a per-process
 * random seed, so salts chosen to collide cannot be computed offline.
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
/** The false-positive rate a full generation stays under (7.6e-7: see the module's note). */
export const REPLAY_FALSE_POSITIVE_RATE = 1e-6;

/** Bits of a block: every probe of one salt falls in the same block. */
const BLOCK_BITS = 1024;
/** 32-bit words of a block. */
export const BLOCK_WORDS = BLOCK_BITS / 32;
/** Bits per remembered salt. */
const BITS_PER_SALT = 35;
/** Probes (bits set) per salt. */
export const BLOOM_PROBES = 18;

/**
 * Whether every probe of a salt hashed to (h1, h2) is set in the block of `bits` (`blocks`
 * blocks) that h1 picks. The probes are the top 10 bits of a sequence that steps h2 through a
 * 32-bit mixing bijection (the "lowbias32" xorshift-multiply): positions in arithmetic
 * progression, the usual double hashing, overlap between salts of one block so often that
 * they measured 3e-4 false positives here.
 */
export function bloomHas(
  bits: Uint32Array | Int32Array,
  blocks: number,
  h1: number,
  h2: number,
): boolean {
  const start = (h1 % blocks) * BLOCK_WORDS;
  let x = h2;
  for (let i = 0; i < BLOOM_PROBES; i++) {
    x = nextProbe(x);
    const at = x >>> 22;
    if ((bits[start + (at >>> 5)]! & (1 << (at & 31))) === 0) return false;
  }
  return true;
}

/** Sets the probes `bloomHas` reads. */
export function bloomAdd(
  bits: Uint32Array | Int32Array,
  blocks: number,
  h1: number,
  h2: number,
): void {
  const start = (h1 % blocks) * BLOCK_WORDS;
  let x = h2;
  for (let i = 0; i < BLOOM_PROBES; i++) {
    x = nextProbe(x);
    const at = x >>> 22;
    bits[start + (at >>> 5)]! |= 1 << (at & 31);
  }
}

/** One step of the probe sequence: a bijection on 32-bit words that mixes every bit. */
function nextProbe(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b | 0);
  return (x ^ (x >>> 16)) >>> 0;
}

/** One Bloom filter generation. */
class BloomGeneration {
  readonly bits: Uint32Array;
  readonly blocks: number;
  count = 0;

  constructor(blocks: number) {
    this.blocks = blocks;
    this.bits = new Uint32Array(blocks * BLOCK_WORDS);
  }

  has(h1: number, h2: number): boolean {
    return bloomHas(this.bits, this.blocks, h1, h2);
  }

  add(h1: number, h2: number): void {
    bloomAdd(this.bits, this.blocks, h1, h2);
    this.count++;
  }

  clear(): void {
    this.bits.fill(0);
    this.count = 0;
  }
}

/** The in-process salt memory: two generations, count-rotated (see the module's note). */
export class ReplayFilter implements ReplayStore {
  readonly #capacity: number;
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
    const blocks = bloomBlocks(capacity);
    this.#current = new BloomGeneration(blocks);
    this.#previous = new BloomGeneration(blocks);
    // The generation salts go into is held from the start (see the module's note): the
    // kernel maps a page when it is first written. The other is written when it takes over.
    this.#current.clear();
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
      this.#current.has(h1, h2) || this.#previous.has(h1, h2)
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
    this.#current.add(h1, h2);
  }

  #hash(salt: Uint8Array): [number, number] {
    return saltHash(salt, this.#seed1, this.#seed2);
  }
}

/** Blocks of one generation for `capacity` salts (see the module's note for the rate). */
export function bloomBlocks(capacity: number): number {
  return Math.max(1, Math.ceil((capacity * BITS_PER_SALT) / BLOCK_BITS));
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
