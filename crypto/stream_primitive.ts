/**
 * The seam between stream ciphers and their implementations: one keyed cipher direction whose
 * state (keystream position, CFB feedback register, RC4 permutation) runs on from call to call.
 * OpenSSL through FFI (crypto/openssl_stream.ts), node:crypto (crypto/node_stream.ts) and our own
 * code (crypto/salsa20.ts, crypto/table_cipher.ts) each provide it; crypto/stream_cipher.ts picks.
 * @module
 */

/** One direction of a stream cipher, keyed with its IV. */
export interface StreamPrimitive extends Disposable {
  /**
   * Encrypts or decrypts `input` into the first `input.length` bytes of `out`, which may be
   * `input` itself. The state continues where the previous call left it, at any byte offset.
   */
  updateInto(input: Uint8Array, out: Uint8Array): void;
  /** Returns native memory early (idempotent); dropped primitives are freed when collected. */
  dispose(): void;
}
