/**
 * The seam between ciphers and crypto backends: one keyed AEAD primitive, no state of its own.
 * Backends (node:crypto, OpenSSL through FFI) each provide a factory; crypto/backend.ts picks.
 * @module
 */

/** A keyed AEAD with empty associated data. */
export interface AeadPrimitive {
  readonly tagSize: number;
  /** Returns ciphertext followed by the tag. */
  seal(nonce: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Returns the plaintext, or null when the tag does not verify. */
  open(nonce: Uint8Array, sealed: Uint8Array): Uint8Array | null;
  /**
   * Writes ciphertext and tag to the start of `out` (at least `plaintext.length + tagSize`
   * bytes) and returns the count written. Saves one allocation per call: sealing chunks this
   * way measured 30–45 % faster with the OpenSSL backend (bench/crypto_bench.ts). Optional:
   * `AeadCipher` falls back to `seal` and a copy for a primitive without it.
   */
  sealInto?(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): number;
  /**
   * Writes the plaintext to the start of `out` (at least `sealed.length - tagSize` bytes) and
   * returns its length, or -1 when the tag does not verify. Optional, like `sealInto`.
   */
  openInto?(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): number;
  /**
   * Does now what the first seal would do anyway (the OpenSSL backend keys a cached context), so
   * that work can run before it is needed (protocol/spare_writer_key.ts). Optional.
   */
  prepareSeal?(): void;
}
