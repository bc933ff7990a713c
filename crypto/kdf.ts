/**
 * Key derivation for AEAD-2017 (SIP004/SIP007) and the stream ciphers: the password becomes a
 * master key through OpenSSL's EVP_BytesToKey (MD5, no salt, one round), and each direction of
 * each AEAD session gets its own subkey through HKDF-SHA1 with the info string "ss-subkey".
 * Stream ciphers use the master key with each IV directly; `table` uses the raw password.
 * @module
 */
import { createHash } from "node:crypto";
import { hmacSha1Into, SHA1_SIZE } from "./sha1.ts";
import type { MethodInfo } from "./methods.ts";

const SS_SUBKEY_INFO = new TextEncoder().encode("ss-subkey");

/** D0 = MD5(password), Di = MD5(Di-1 || password); the key is the first `keySize` bytes. */
export function evpBytesToKey(password: string, keySize: number): Uint8Array {
  const passwordBytes = new TextEncoder().encode(password);
  const key = new Uint8Array(keySize);
  let previous = new Uint8Array(0);
  for (let filled = 0; filled < keySize;) {
    const digest = createHash("md5").update(previous).update(passwordBytes).digest();
    previous = new Uint8Array(digest);
    const take = Math.min(previous.length, keySize - filled);
    key.set(previous.subarray(0, take), filled);
    filled += take;
  }
  return key;
}

/**
 * How a configured key (libev's `--key`, base64) travels where a password goes: after a NUL,
 * which no password of a C-string implementation can start with. Only `deriveMasterKey` reads
 * it; `passwordForKey` writes it.
 */
const KEY_MARK = "\u0000key:";

/** The password-shaped form of a base64 master key (see `KEY_MARK`). */
export function passwordForKey(base64Key: string): string {
  return `${KEY_MARK}${base64Key}`;
}

/** Whether `password` carries a key rather than a password. */
export function isKeyPassword(password: string): boolean {
  return password.startsWith(KEY_MARK);
}

/**
 * The master key of an AEAD-2017 or stream `method`: EVP_BytesToKey of the password, except for
 * `table`, whose key is the password's UTF-8 bytes, and a configured key, used as it is.
 */
export function deriveMasterKey(method: MethodInfo, password: string): Uint8Array {
  if (isKeyPassword(password)) {
    const key = Uint8Array.from(atob(password.slice(KEY_MARK.length)), (c) => c.charCodeAt(0));
    if (key.length !== method.keySize) {
      throw new RangeError(`Invalid key: ${method.name} needs ${method.keySize} bytes`);
    }
    return key;
  }
  if (method.stream === "table") return new TextEncoder().encode(password);
  return evpBytesToKey(password, method.keySize);
}

/** HKDF's pseudorandom key and the block of its last expansion step. */
const PRK = new Uint8Array(SHA1_SIZE);
const T = new Uint8Array(SHA1_SIZE);
const COUNTER = new Uint8Array(1);
const EMPTY = new Uint8Array(0);

/**
 * RFC 5869 HKDF with SHA-1, on crypto/sha1.ts rather than `node:crypto` (see there for why: a
 * session derives two subkeys per side).
 */
export function hkdfSha1(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * SHA1_SIZE) {
    throw new RangeError(`Invalid HKDF length ${length}: expected 0 to ${255 * SHA1_SIZE}`);
  }
  return hkdfSha1Into(ikm, salt, info, new Uint8Array(length));
}

/** `hkdfSha1` into `out` (its whole length, at most 255 × 20 bytes); returns `out`. */
function hkdfSha1Into(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  out: Uint8Array,
): Uint8Array {
  const length = out.length;
  // An empty salt is HashLen zero bytes (RFC 5869 2.2); HMAC pads a short key with zeros anyway.
  hmacSha1Into(salt, [ikm], PRK);
  let previous = EMPTY;
  for (let i = 1, at = 0; at < length; i++) {
    COUNTER[0] = i;
    // T(i) = HMAC(PRK, T(i-1) | info | i); T is read as input before it is overwritten.
    hmacSha1Into(PRK, [previous, info, COUNTER], T);
    const take = Math.min(SHA1_SIZE, length - at);
    for (let j = 0; j < take; j++) out[at + j] = T[j]!;
    at += take;
    previous = T;
  }
  return out;
}

/** The AEAD-2017 session subkey for one direction of one session. */
export function deriveSessionSubkey(masterKey: Uint8Array, salt: Uint8Array): Uint8Array {
  return hkdfSha1(masterKey, salt, SS_SUBKEY_INFO, masterKey.length);
}

/** Where `sessionSubkeyView` writes (the longest AEAD-2017 key is 32 bytes). */
const SUBKEY = new Uint8Array(32);

/**
 * `deriveSessionSubkey` in a buffer that the next call overwrites: for a caller that copies the
 * key at once, as every AEAD primitive does when keyed (crypto/backend.ts). Each session derives
 * two subkeys per side, and a new array costs Deno a native backing store.
 */
export function sessionSubkeyView(masterKey: Uint8Array, salt: Uint8Array): Uint8Array {
  if (masterKey.length > SUBKEY.length) return deriveSessionSubkey(masterKey, salt);
  return hkdfSha1Into(masterKey, salt, SS_SUBKEY_INFO, SUBKEY.subarray(0, masterKey.length));
}
