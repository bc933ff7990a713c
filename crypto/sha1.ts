/**
 * SHA-1 (FIPS 180-4) and HMAC-SHA1 (RFC 2104), only for HKDF-SHA1 (crypto/kdf.ts), which every
 * AEAD-2017 session runs twice per side (one subkey per direction) and every AEAD-2017 UDP
 * packet once.
 *
 * Why our own: `node:crypto`'s `hkdfSync` makes a `KeyObject` (a native handle, freed by the
 * garbage collector) and a `Buffer` for every call. Alone in a loop it is as fast as this code
 * (2.2 against 2.8 µs per 16-byte subkey), but among the rest of a session's work it cost
 * about 5 % of each side's CPU (perf), and replacing it took connection setup from 1533 to
 * 1408 ms for 2000 connections (bench/throughput.ts, same run, aes-128-gcm). Its answers are
 * checked against RFC 5869's vectors and `node:crypto` (tests/crypto/kdf_test.ts,
 * tests/protocol/session_subkey_test.ts).
 *
 * The block function is this file's JavaScript until the OpenSSL backend hands over
 * `SHA1_Transform` (crypto/backend.ts, `useSha1Transform`): 50 ns a block (SHA-NI) against
 * 340 here, and with no HMAC call of OpenSSL's own, which looks its digest up on every key
 * (1.0–1.3 µs an HMAC, against 0.7 for the two here). The padding and the HMAC stay here.
 *
 * Not constant-time in any way that matters here: it has no secret-dependent branches or
 * indexes, like any SHA-1.
 * @module
 */

const BLOCK_SIZE = 64;
/** The SHA-1 digest length. */
export const SHA1_SIZE = 20;

/** Message schedule, shared: every call is synchronous. */
const W = new Int32Array(80);
/** The block being filled. */
const BLOCK = new Uint8Array(BLOCK_SIZE);
/**
 * Chaining state: the first five words of an OpenSSL `SHA_CTX` (96 bytes, host byte order),
 * so `SHA1_Transform` works on it in place.
 */
const CONTEXT = new Uint8Array(96);
const H = new Int32Array(CONTEXT.buffer, 0, 5);

const INITIAL = Int32Array.of(
  0x67452301,
  0xefcdab89 | 0,
  0x98badcfe | 0,
  0x10325476,
  0xc3d2e1f0 | 0,
);

/** OpenSSL's `SHA1_Transform(SHA_CTX *c, const unsigned char *block)`: one block into `c`. */
export type Sha1Transform = (context: Uint8Array, block: Uint8Array) => void;

/** The native block function once installed, else null (this file's `compress`). */
let native: Sha1Transform | null = null;

/**
 * Makes `transform` the block function, if it agrees with this file's on two chained blocks;
 * returns whether it does. Null goes back to this file's.
 */
export function useSha1Transform(transform: Sha1Transform | null): boolean {
  if (transform === null) {
    native = null;
    return true;
  }
  const block = new Uint8Array(BLOCK_SIZE).map((_, i) => (i * 151 + 7) & 0xff);
  const answers: number[][] = [];
  const runs = [(b: Uint8Array) => compress(b), (b: Uint8Array) => transform(CONTEXT, b)];
  for (const run of runs) {
    H.set(INITIAL);
    run(block);
    block[0]! ^= 0xff;
    run(block);
    block[0]! ^= 0xff;
    answers.push([...H]);
  }
  const agree = answers[0]!.every((word, i) => word === answers[1]![i]);
  native = agree ? transform : null;
  return agree;
}

/** Whether the block function is a native one (for tests and the startup log). */
export function sha1IsNative(): boolean {
  return native !== null;
}

/** One block into `H`, natively when installed. */
function processBlock(block: Uint8Array): void {
  if (native !== null) native(CONTEXT, block);
  else compress(block);
}
/** HMAC's key pads and inner digest. */
const PAD = new Uint8Array(BLOCK_SIZE);
const INNER = new Uint8Array(SHA1_SIZE);
const LONG_KEY = new Uint8Array(SHA1_SIZE);
/** What the outer hash takes after its pad: the inner digest. */
const OUTER_PARTS: readonly Uint8Array[] = [INNER];

function compress(block: Uint8Array): void {
  for (let t = 0; t < 16; t++) {
    const i = 4 * t;
    W[t] = (block[i]! << 24) | (block[i + 1]! << 16) | (block[i + 2]! << 8) | block[i + 3]!;
  }
  for (let t = 16; t < 80; t++) {
    const x = W[t - 3]! ^ W[t - 8]! ^ W[t - 14]! ^ W[t - 16]!;
    W[t] = (x << 1) | (x >>> 31);
  }
  let a = H[0]!, b = H[1]!, c = H[2]!, d = H[3]!, e = H[4]!;
  // Four loops, one per round function, rather than a branch in every round.
  let t = 0;
  for (; t < 20; t++) {
    const next = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + 0x5a827999 + W[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = next;
  }
  for (; t < 40; t++) {
    const next = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + W[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = next;
  }
  for (; t < 60; t++) {
    const next =
      (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + (0x8f1bbcdc | 0) + W[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = next;
  }
  for (; t < 80; t++) {
    const next = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + (0xca62c1d6 | 0) + W[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = next;
  }
  H[0] = (H[0]! + a) | 0;
  H[1] = (H[1]! + b) | 0;
  H[2] = (H[2]! + c) | 0;
  H[3] = (H[3]! + d) | 0;
  H[4] = (H[4]! + e) | 0;
}

/** SHA-1 of the concatenation of `parts`, written to `out` at `at`. */
export function sha1Into(parts: readonly Uint8Array[], out: Uint8Array, at = 0): void {
  H.set(INITIAL);
  finish(parts, 0, out, at);
}

/**
 * Hashes `parts` on from `H`, which has taken `done` bytes already (whole blocks), pads, and
 * writes the digest to `out` at `at`.
 */
function finish(parts: readonly Uint8Array[], done: number, out: Uint8Array, at: number): void {
  let filled = 0;
  let length = done;
  for (const part of parts) {
    length += part.length;
    for (let i = 0; i < part.length; i++) {
      BLOCK[filled++] = part[i]!;
      if (filled === BLOCK_SIZE) {
        processBlock(BLOCK);
        filled = 0;
      }
    }
  }
  // Padding: 0x80, zeros, then the length in bits as a 64-bit big-endian number.
  BLOCK[filled++] = 0x80;
  if (filled > BLOCK_SIZE - 8) {
    BLOCK.fill(0, filled);
    processBlock(BLOCK);
    filled = 0;
  }
  BLOCK.fill(0, filled, BLOCK_SIZE - 8);
  const bits = length * 8;
  const high = Math.floor(bits / 0x100000000);
  for (let i = 0; i < 4; i++) {
    BLOCK[BLOCK_SIZE - 8 + i] = (high >>> (24 - 8 * i)) & 0xff;
    BLOCK[BLOCK_SIZE - 4 + i] = (bits >>> (24 - 8 * i)) & 0xff;
  }
  processBlock(BLOCK);
  for (let i = 0; i < 5; i++) {
    const word = H[i]!;
    out[at + 4 * i] = word >>> 24;
    out[at + 4 * i + 1] = (word >>> 16) & 0xff;
    out[at + 4 * i + 2] = (word >>> 8) & 0xff;
    out[at + 4 * i + 3] = word & 0xff;
  }
}

/** HMAC-SHA1 of the concatenation of `message` under `key`, written to `out` at `at`. */
export function hmacSha1Into(
  key: Uint8Array,
  message: readonly Uint8Array[],
  out: Uint8Array,
  at = 0,
): void {
  let k = key;
  if (k.length > BLOCK_SIZE) {
    sha1Into([k], LONG_KEY);
    k = LONG_KEY;
  }
  // Each pad is a whole block, taken straight from PAD rather than through BLOCK.
  PAD.fill(0x36);
  for (let i = 0; i < k.length; i++) PAD[i] = k[i]! ^ 0x36;
  H.set(INITIAL);
  processBlock(PAD);
  finish(message, BLOCK_SIZE, INNER, 0);
  for (let i = 0; i < BLOCK_SIZE; i++) PAD[i] = PAD[i]! ^ (0x36 ^ 0x5c);
  H.set(INITIAL);
  processBlock(PAD);
  finish(OUTER_PARTS, BLOCK_SIZE, out, at);
}
