/**
 * BLAKE3 `hash` and `derive_key` for the 2022 edition (SIP022/SIP023). Neither Deno's WebCrypto
 * nor its `node:crypto` has BLAKE3, so this is the one module that imports `@noble/hashes`
 * (pinned here with a full `npm:` specifier, so the library imports from any project, and locked in deno.lock); nothing else in ssdeno imports an npm package for BLAKE3.
 *
 * Both functions return a prefix of the BLAKE3 extendable output, so a 16-byte derived key is
 * the first half of the 32-byte one (what ss-crypto does for AES-128 subkeys).
 * @module
 */
import { blake3 } from "npm:@noble/hashes@2.4.0/blake3.js";

/** BLAKE3's default output length in bytes. */
export const BLAKE3_OUT_LEN = 32;

const contextCache = new Map<string, Uint8Array>();

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
  checkLength(length);
  let contextBytes = contextCache.get(context);
  if (contextBytes === undefined) {
    contextBytes = new TextEncoder().encode(context);
    // Contexts are a handful of constants; the bound only guards against misuse.
    if (contextCache.size < 16) contextCache.set(context, contextBytes);
  }
  return blake3(material, { context: contextBytes, dkLen: length });
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > 0xffff) {
    throw new RangeError(`Invalid BLAKE3 output length ${length}: expected 1 to 65535`);
  }
}
