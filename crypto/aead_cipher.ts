/**
 * One direction of an AEAD session: a subkey and the little-endian nonce counter that SIP004
 * increments after every seal or open. The counter starts at zero and is 12 bytes long, or 24
 * for XChaCha20-Poly1305 (libev and ss-rust count over the whole extended nonce).
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { AeadPrimitive } from "./aead_primitive.ts";
import type { AeadAlgorithm } from "./methods.ts";
import { createAeadPrimitive } from "./backend.ts";

const NONCE_SIZE = 12;
const XCHACHA_NONCE_SIZE = 24;

/** Adds one to a little-endian counter in place, carrying from byte 0 upward. */
export function incrementNonce(nonce: Uint8Array): void {
  for (let i = 0; i < nonce.length; i++) {
    const next = (nonce[i]! + 1) & 0xff;
    nonce[i] = next;
    if (next !== 0) return;
  }
}

/** Seals or opens one unit at a time, advancing the nonce after each. */
export class AeadCipher {
  readonly #primitive: AeadPrimitive;
  readonly #nonce: Uint8Array;

  constructor(algorithm: AeadAlgorithm, subkey: Uint8Array) {
    this.#primitive = createAeadPrimitive(algorithm, subkey);
    this.#nonce = new Uint8Array(
      algorithm === "xchacha20-poly1305" ? XCHACHA_NONCE_SIZE : NONCE_SIZE,
    );
  }

  get tagSize(): number {
    return this.#primitive.tagSize;
  }

  /** Encrypts one unit; returns ciphertext followed by the tag. */
  seal(plaintext: Uint8Array): Uint8Array {
    const sealed = this.#primitive.seal(this.#nonce, plaintext);
    incrementNonce(this.#nonce);
    return sealed;
  }

  /** Like `seal`, writing ciphertext and tag to the start of `out`; returns the count. */
  sealInto(plaintext: Uint8Array, out: Uint8Array): number {
    let written: number;
    if (this.#primitive.sealInto) {
      written = this.#primitive.sealInto(this.#nonce, plaintext, out);
    } else {
      const sealed = this.#primitive.seal(this.#nonce, plaintext);
      out.set(sealed);
      written = sealed.length;
    }
    incrementNonce(this.#nonce);
    return written;
  }

  /** Like `open`, writing the plaintext to the start of `out`; returns its length. */
  openInto(sealed: Uint8Array, out: Uint8Array): number {
    let length: number;
    if (this.#primitive.openInto) {
      length = this.#primitive.openInto(this.#nonce, sealed, out);
    } else {
      const plain = this.#primitive.open(this.#nonce, sealed);
      if (plain !== null) out.set(plain);
      length = plain === null ? -1 : plain.length;
    }
    if (length < 0) throw new ProtocolError("ERR_CIPHER", "Authentication failed: tag mismatch");
    incrementNonce(this.#nonce);
    return length;
  }

  /** Decrypts one unit; a failed tag throws `ProtocolError("ERR_CIPHER")`. */
  open(sealed: Uint8Array): Uint8Array {
    const plain = this.#primitive.open(this.#nonce, sealed);
    if (plain === null) {
      throw new ProtocolError("ERR_CIPHER", "Authentication failed: tag mismatch");
    }
    incrementNonce(this.#nonce);
    return plain;
  }
}
