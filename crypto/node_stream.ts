/**
 * The `node:crypto` stream-cipher backend, the fallback when OpenSSL cannot be loaded. Deno's
 * node:crypto (2.9.6) has AES-CTR and ChaCha20 (the same 16-byte IV as OpenSSL's: a 32-bit
 * little-endian block counter, then a 12-byte nonce) but no CFB mode, RC4, Blowfish, Camellia or
 * SM4; `getCiphers()` lists what it has. A cipher object keeps its position across `update()`
 * calls, so one object serves one direction of a session.
 * @module
 */
import { type Cipheriv, createCipheriv } from "node:crypto";
import type { StreamPrimitive } from "./stream_primitive.ts";

/** The ciphers this backend can make. */
export type NodeStreamCipher = "aes-128-ctr" | "aes-192-ctr" | "aes-256-ctr" | "chacha20";

const NODE_CIPHERS: ReadonlySet<string> = new Set<NodeStreamCipher>([
  "aes-128-ctr",
  "aes-192-ctr",
  "aes-256-ctr",
  "chacha20",
]);

/** True when node:crypto has `cipher`. */
export function isNodeStreamCipher(cipher: string): cipher is NodeStreamCipher {
  return NODE_CIPHERS.has(cipher);
}

/**
 * A keyed direction. These are keystream ciphers, so encrypting and decrypting are the same
 * operation and one `Cipheriv` does both.
 */
export function createNodeStream(
  cipher: NodeStreamCipher,
  key: Uint8Array,
  iv: Uint8Array,
): StreamPrimitive {
  let state: Cipheriv | null = createCipheriv(cipher, key, iv);
  return {
    updateInto(input, out) {
      if (state === null) throw new Error(`node:crypto ${cipher} primitive was disposed`);
      if (input.length === 0) return;
      out.set(state.update(input));
    },
    dispose() {
      state = null;
    },
    [Symbol.dispose]() {
      state = null;
    },
  };
}
