/**
 * The fuzzer's seeded pseudo-random generator: sfc32 (Chris Doty-Humphrey's small fast
 * counting generator), 32-bit arithmetic only, so it is fast in V8 and gives the same numbers
 * on every machine. Not for keys.
 *
 * Every input gets its own generator, derived from (seed, target name, iteration) by
 * {@linkcode inputSeed}: any input can be made again on its own, without replaying the ones
 * before it. That is what lets a watchdog name the input a hung worker was stuck on.
 * @module
 */

/** sfc32 over four 32-bit words; a state with a lifecycle, hence a class. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    // The first outputs of sfc32 still show the seed: skip them, as its author recommends.
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** An integer in `0 .. n - 1` (n up to 2^32; 0 for n ≤ 1). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in `lo .. hi`, both included. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability `1 / n`. */
  oneIn(n: number): boolean {
    return this.below(n) === 0;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** FNV-1a over a string's UTF-16 code units: a stable 32-bit name hash. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  }
  return hash >>> 0;
}

/** FNV-1a over bytes: targets derive their split points from the input itself. */
export function hashBytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash >>> 0;
}

/** The seed of one input's generator: a murmur3-style mix of the three numbers. */
export function inputSeed(seed: number, target: string, iteration: number): number {
  let h = Math.imul(seed >>> 0, 0xcc9e2d51) ^ hashString(target);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= Math.imul(iteration >>> 0, 0x1b873593) ^ Math.floor(iteration / 0x1_0000_0000);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
