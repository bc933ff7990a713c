/**
 * The legacy `table` cipher (NOTES §5.2): a fixed byte substitution derived from the raw
 * password, with no IV, so every connection and packet uses the same mapping.
 *
 * ```
 * a = little-endian u64 of MD5(password)[0..8]
 * table = [0, 1, ..., 255]
 * for i in 1..1023: stable-sort table by key(x) = a mod (x + i)
 * encrypt[x] = table[x]; decrypt = inverse of encrypt
 * ```
 *
 * `a` is 64 bits, past what a JS number holds exactly, so `a mod m` is taken from its two 32-bit
 * halves: `((hi mod m) · (2^32 mod m) + lo mod m) mod m`; with `m ≤ 1279` every term stays far
 * below 2^53. `Array.prototype.sort` is stable (ES2019), like Python's `list.sort`. Deriving a
 * table took 40–50 ms here (Deno 2.9.6, 2-core dev machine), so tables are cached per password
 * (a few, least recently used first out): UDP keys the cipher once per packet.
 * @module
 */
import { createHash } from "node:crypto";
import type { StreamPrimitive } from "./stream_primitive.ts";

/** The two directions of one password's substitution. */
export interface SubstitutionTables {
  readonly encrypt: Uint8Array;
  readonly decrypt: Uint8Array;
}

/** Passwords whose tables are kept. */
const CACHE_SIZE = 8;
const cache = new Map<string, SubstitutionTables>();
const TWO_TO_32 = 2 ** 32;

/** The substitution tables for `password` (its UTF-8 bytes), cached. */
export function substitutionTables(password: Uint8Array): SubstitutionTables {
  const cacheKey = String.fromCharCode(...password);
  const cached = cache.get(cacheKey);
  if (cached !== undefined) {
    cache.delete(cacheKey);
    cache.set(cacheKey, cached);
    return cached;
  }
  const tables = deriveTables(password);
  cache.set(cacheKey, tables);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return tables;
}

function deriveTables(password: Uint8Array): SubstitutionTables {
  const digest = createHash("md5").update(password).digest();
  const lo = digest.readUInt32LE(0);
  const hi = digest.readUInt32LE(4);
  const table = Array.from({ length: 256 }, (_, x) => x);
  const keys = new Float64Array(256);
  for (let i = 1; i < 1024; i++) {
    for (let x = 0; x < 256; x++) {
      const m = x + i;
      keys[x] = ((hi % m) * (TWO_TO_32 % m) + (lo % m)) % m;
    }
    table.sort((p, q) => keys[p]! - keys[q]!);
  }
  const encrypt = Uint8Array.from(table);
  const decrypt = new Uint8Array(256);
  for (let x = 0; x < 256; x++) decrypt[encrypt[x]!] = x;
  return { encrypt, decrypt };
}

/** One direction of `table` for `password`: a byte-for-byte lookup, no state. */
export function createTableCipher(
  password: Uint8Array,
  options: { decrypt?: boolean } = {},
): StreamPrimitive {
  const tables = substitutionTables(password);
  const map = options.decrypt ? tables.decrypt : tables.encrypt;
  return {
    updateInto(input, out) {
      for (let i = 0; i < input.length; i++) out[i] = map[input[i]!]!;
    },
    dispose() {},
    [Symbol.dispose]() {},
  };
}
