/**
 * One direction of an AEAD session: a subkey and the little-endian nonce counter that SIP004
 * increments after every seal or open. The counter starts at zero.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { AeadPrimitive } from "./aead_primitive.ts";
import type { AeadAlgorithm } from "./methods.ts";
import { createNodeAead } from "./node_aead.ts";

const NONCE_SIZE = 12;

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
  readonly #nonce = new Uint8Array(NONCE_SIZE);

  constructor(algorithm: AeadAlgorithm, subkey: Uint8Array) {
    this.#primitive = createNodeAead(algorithm, subkey);
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
