/**
 * Key derivation for AEAD-2017 (SIP004/SIP007): the password becomes a master key through
 * OpenSSL's EVP_BytesToKey (MD5, no salt, one round), and each direction of each session gets
 * its own subkey through HKDF-SHA1 with the info string "ss-subkey".
 * @module
 */
import { createHash, hkdfSync } from "node:crypto";

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

/** RFC 5869 HKDF with SHA-1. */
export function hkdfSha1(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return new Uint8Array(hkdfSync("sha1", ikm, salt, info, length));
}

/** The AEAD-2017 session subkey for one direction of one session. */
export function deriveSessionSubkey(masterKey: Uint8Array, salt: Uint8Array): Uint8Array {
  return hkdfSha1(masterKey, salt, SS_SUBKEY_INFO, masterKey.length);
}
