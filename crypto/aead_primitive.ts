/**
 * The seam between ciphers and crypto backends: one keyed AEAD primitive, no state of its own.
 * Backends (node:crypto today; OpenSSL through FFI later) each provide a factory.
 * @module
 */

/** A keyed AEAD with empty associated data. */
export interface AeadPrimitive {
  readonly tagSize: number;
  /** Returns ciphertext followed by the tag. */
  seal(nonce: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Returns the plaintext, or null when the tag does not verify. */
  open(nonce: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}
