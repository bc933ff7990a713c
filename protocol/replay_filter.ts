/**
 * Remembers recently seen salts so a recorded first flight cannot be replayed.
 *
 * Two generations of exact sets: inserts go to `current`; when it holds `capacity` entries it
 * becomes `previous` and the old `previous` is dropped. A salt is therefore remembered for at
 * least the last `capacity` insertions and at most `2 × capacity`. Memory is bounded by
 * `2 × capacity` keys: with the default 20 000 and 32-byte salts stored as 32-character strings
 * that is about 40 000 × ~80 B ≈ 3 MiB. At 100 new connections per second a salt stays known for
 * 200 s or more; a replay after that reaches only a session whose nonce stream it cannot extend.
 * @module
 */

/** Default number of salts per generation. */
export const DEFAULT_REPLAY_CAPACITY = 20_000;

export class ReplayFilter {
  readonly #capacity: number;
  #current = new Set<string>();
  #previous = new Set<string>();

  constructor(capacity: number = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Invalid replay filter capacity ${capacity}: expected a positive integer`,
      );
    }
    this.#capacity = capacity;
  }

  /** Entries currently remembered (for tests and stats). */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  /** True when `salt` was seen before; records it either way. */
  checkAndAdd(salt: Uint8Array): boolean {
    const key = saltKey(salt);
    if (this.#current.has(key) || this.#previous.has(key)) return true;
    this.#add(key);
    return false;
  }

  /** Records a salt we generated ourselves, so reflected traffic is refused too. */
  addOwn(salt: Uint8Array): void {
    this.#add(saltKey(salt));
  }

  #add(key: string): void {
    if (this.#current.size >= this.#capacity) {
      this.#previous = this.#current;
      this.#current = new Set();
    }
    this.#current.add(key);
  }
}

function saltKey(salt: Uint8Array): string {
  return String.fromCharCode(...salt);
}
