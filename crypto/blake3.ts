/**
 * BLAKE3 `hash` and `derive_key` for the 2022 edition (SIP022/SIP023). Neither Deno's WebCrypto
 * nor its `node:crypto` has BLAKE3, so this is the one module of the product that imports
 * `@noble/hashes` (pinned here with a full `npm:` specifier, so the library imports from any
 * project, and locked in deno.lock); only the tests and the benchmark import it besides, to
 * compare it with the path below.
 *
 * Both functions return a prefix of the BLAKE3 extendable output, so a 16-byte derived key is
 * the first half of the 32-byte one (what ss-crypto does for AES-128 subkeys).
 *
 * Why a compression function of our own: every 2022 session derives two subkeys a side from at
 * most 64 bytes of key material (`PSK ‖ salt`), which BLAKE3 hashes in one block. The library
 * hashes the context string again on every call and allocates two hashers and two outputs
 * (each a native backing store in Deno); here the context's key is computed once and a
 * derivation is one compression into a reused buffer (`deno task bench`, "BLAKE3 derive_key").
 * Longer inputs, outputs over 32 bytes and `hash` go to the library.
 * @module
 */
import { blake3 } from "npm:@noble/hashes@2.4.0/blake3.js";
import { concatBytes } from "./bytes.ts";

/** BLAKE3's default output length in bytes. */
export const BLAKE3_OUT_LEN = 32;

const EMPTY = new Uint8Array(0);
/** One block: what a single compression takes. */
const BLOCK_LEN = 64;
/** BLAKE3's initial chaining value (SHA-256's IV). */
const IV = [
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
];
/** Domain flags of a block (BLAKE3 spec, table 3). */
const CHUNK_START = 1;
const CHUNK_END = 2;
const ROOT = 8;
const DERIVE_KEY_CONTEXT = 32;
const DERIVE_KEY_MATERIAL = 64;
/** Flags of a whole single-block input hashed as the root. */
const SINGLE_BLOCK = CHUNK_START | CHUNK_END | ROOT;
/** The message word permutation applied between rounds. */
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
/** Message word order of each of the 7 rounds: the permutation applied round after round. */
const SCHEDULE: Uint8Array[] = (() => {
  const rounds: Uint8Array[] = [];
  let order = Array.from({ length: 16 }, (_, i) => i);
  for (let round = 0; round < 7; round++) {
    rounds.push(Uint8Array.from(order));
    order = PERMUTATION.map((i) => order[i]!);
  }
  return rounds;
})();

/** Scratch of one compression: the block's bytes, its words, and the 16-word state. */
const blockBytes = new Uint8Array(BLOCK_LEN);
const words = new Uint32Array(16);
const v = new Uint32Array(16);
/** The first 8 output words of the last compression. */
const out = new Uint32Array(8);

/** The key of each derive_key context seen (a handful of constants). */
const contextKeys = new Map<string, Uint32Array | null>();
const contextBytesCache = new Map<string, Uint8Array>();

/** `blake3::hash(data)`, `length` bytes of output (default 32). */
export function blake3Hash(data: Uint8Array, length: number = BLAKE3_OUT_LEN): Uint8Array {
  checkLength(length);
  return blake3(data, { dkLen: length });
}

/**
 * `blake3::derive_key(context, material)`, `length` bytes of output (default 32). The context
 * is a hard-coded, globally unique string such as `"shadowsocks 2022 session subkey"`.
 */
export function blake3DeriveKey(
  context: string,
  material: Uint8Array,
  length: number = BLAKE3_OUT_LEN,
): Uint8Array {
  return blake3DeriveKeyOf(context, material, EMPTY, length);
}

/**
 * `blake3DeriveKey(context, head ‖ tail, length)` without joining the two: the 2022 subkeys'
 * material is a key and a salt.
 */
export function blake3DeriveKeyOf(
  context: string,
  head: Uint8Array,
  tail: Uint8Array,
  length: number = BLAKE3_OUT_LEN,
): Uint8Array {
  checkLength(length);
  return blake3DeriveKeyInto(context, head, tail, new Uint8Array(length));
}

/**
 * `blake3DeriveKeyOf(context, head, tail, target.length)` written into `target`; returns
 * `target`. For a caller with a buffer of its own: a new array per subkey costs Deno a native
 * backing store.
 */
export function blake3DeriveKeyInto(
  context: string,
  head: Uint8Array,
  tail: Uint8Array,
  target: Uint8Array,
): Uint8Array {
  checkLength(target.length);
  const total = head.length + tail.length;
  const key = contextKey(context);
  if (key === null || total > BLOCK_LEN || target.length > BLAKE3_OUT_LEN) {
    const material = tail.length === 0 ? head : concatBytes(head, tail);
    target.set(blake3(material, { context: contextBytes(context), dkLen: target.length }));
    return target;
  }
  blockBytes.fill(0);
  blockBytes.set(head);
  blockBytes.set(tail, head.length);
  return outputInto(key, total, target);
}

/** Compresses the material in `blockBytes` with a context key into all of `target`. */
function outputInto(key: Uint32Array, materialLength: number, target: Uint8Array): Uint8Array {
  compress(key, materialLength, SINGLE_BLOCK | DERIVE_KEY_MATERIAL);
  for (let i = 0; i < target.length; i++) target[i] = (out[i >> 2]! >>> ((i & 3) * 8)) & 0xff;
  // The material is a PSK and the output a key: neither stays in the scratch.
  blockBytes.fill(0);
  words.fill(0);
  out.fill(0);
  return target;
}

/** The context's key (derive_key's first step), or null for a context longer than a block. */
function contextKey(context: string): Uint32Array | null {
  let key = contextKeys.get(context);
  if (key === undefined) {
    const bytes = contextBytes(context);
    if (bytes.length > BLOCK_LEN) {
      key = null;
    } else {
      blockBytes.fill(0);
      blockBytes.set(bytes);
      compress(IV, bytes.length, SINGLE_BLOCK | DERIVE_KEY_CONTEXT);
      key = out.slice();
    }
    // Contexts are a handful of constants; the bound only guards against misuse.
    if (contextKeys.size < 16) contextKeys.set(context, key);
  }
  return key;
}

function contextBytes(context: string): Uint8Array {
  let bytes = contextBytesCache.get(context);
  if (bytes === undefined) {
    bytes = new TextEncoder().encode(context);
    if (contextBytesCache.size < 16) contextBytesCache.set(context, bytes);
  }
  return bytes;
}

/**
 * One BLAKE3 compression of `blockBytes` (`blockLength` of them used) with chaining value `cv`,
 * counter 0 and `flags`; the first 8 output words go to `out`.
 */
function compress(cv: ArrayLike<number>, blockLength: number, flags: number): void {
  for (let i = 0; i < 16; i++) {
    const at = i * 4;
    words[i] = blockBytes[at]! | blockBytes[at + 1]! << 8 | blockBytes[at + 2]! << 16 |
      blockBytes[at + 3]! << 24;
  }
  for (let i = 0; i < 8; i++) v[i] = cv[i]!;
  v[8] = IV[0]!;
  v[9] = IV[1]!;
  v[10] = IV[2]!;
  v[11] = IV[3]!;
  v[12] = 0;
  v[13] = 0;
  v[14] = blockLength;
  v[15] = flags;
  for (let round = 0; round < 7; round++) {
    const m = SCHEDULE[round]!;
    mix(0, 4, 8, 12, words[m[0]!]!, words[m[1]!]!);
    mix(1, 5, 9, 13, words[m[2]!]!, words[m[3]!]!);
    mix(2, 6, 10, 14, words[m[4]!]!, words[m[5]!]!);
    mix(3, 7, 11, 15, words[m[6]!]!, words[m[7]!]!);
    mix(0, 5, 10, 15, words[m[8]!]!, words[m[9]!]!);
    mix(1, 6, 11, 12, words[m[10]!]!, words[m[11]!]!);
    mix(2, 7, 8, 13, words[m[12]!]!, words[m[13]!]!);
    mix(3, 4, 9, 14, words[m[14]!]!, words[m[15]!]!);
  }
  for (let i = 0; i < 8; i++) out[i] = v[i]! ^ v[i + 8]!;
}

/** BLAKE3's G function on state words a, b, c, d with message words x and y. */
function mix(a: number, b: number, c: number, d: number, x: number, y: number): void {
  v[a] = v[a]! + v[b]! + x;
  v[d] = rotateRight(v[d]! ^ v[a]!, 16);
  v[c] = v[c]! + v[d]!;
  v[b] = rotateRight(v[b]! ^ v[c]!, 12);
  v[a] = v[a]! + v[b]! + y;
  v[d] = rotateRight(v[d]! ^ v[a]!, 8);
  v[c] = v[c]! + v[d]!;
  v[b] = rotateRight(v[b]! ^ v[c]!, 7);
}

function rotateRight(word: number, bits: number): number {
  return (word >>> bits) | (word << (32 - bits));
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > 0xffff) {
    throw new RangeError(`Invalid BLAKE3 output length ${length}: expected 1 to 65535`);
  }
}
