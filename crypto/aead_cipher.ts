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

/**
 * Where each call's nonce is written from the counter: calls are synchronous and no primitive
 * keeps the nonce, so one buffer serves every cipher. A 12-byte `Uint8Array` per cipher costs
 * about 200 bytes of heap, and every session holds two per side (bench/throughput.ts, idle
 * memory). Bytes 8 and up stay zero.
 */
const NONCE = new Uint8Array(NONCE_SIZE);
const XCHACHA_NONCE = new Uint8Array(XCHACHA_NONCE_SIZE);

/** Seals or opens one unit at a time, advancing the nonce after each. */
export class AeadCipher {
  readonly #primitive: AeadPrimitive;
  readonly #extended: boolean;
  /**
   * Units sealed or opened so far: the nonce, as a little-endian integer. A number is exact up
   * to 2^53 units, which no connection reaches (285 years at a million chunks a second).
   */
  #count = 0;

  /** `subkey` is copied (see `createAeadPrimitive`). */
  constructor(algorithm: AeadAlgorithm, subkey: Uint8Array) {
    this.#primitive = createAeadPrimitive(algorithm, subkey);
    this.#extended = algorithm === "xchacha20-poly1305";
  }

  get tagSize(): number {
    return this.#primitive.tagSize;
  }

  /** Does now what the first seal would do anyway (`AeadPrimitive.prepareSeal`). */
  prepareSeal(): void {
    this.#primitive.prepareSeal?.();
  }

  /** Encrypts one unit; returns ciphertext followed by the tag. */
  seal(plaintext: Uint8Array): Uint8Array {
    const sealed = this.#primitive.seal(this.#nonce(), plaintext);
    this.#count++;
    return sealed;
  }

  /** Like `seal`, writing ciphertext and tag to the start of `out`; returns the count. */
  sealInto(plaintext: Uint8Array, out: Uint8Array): number {
    let written: number;
    if (this.#primitive.sealInto) {
      written = this.#primitive.sealInto(this.#nonce(), plaintext, out);
    } else {
      const sealed = this.#primitive.seal(this.#nonce(), plaintext);
      out.set(sealed);
      written = sealed.length;
    }
    this.#count++;
    return written;
  }

  /** Like `open`, writing the plaintext to the start of `out`; returns its length. */
  openInto(sealed: Uint8Array, out: Uint8Array): number {
    let length: number;
    if (this.#primitive.openInto) {
      length = this.#primitive.openInto(this.#nonce(), sealed, out);
    } else {
      const plain = this.#primitive.open(this.#nonce(), sealed);
      if (plain !== null) out.set(plain);
      length = plain === null ? -1 : plain.length;
    }
    if (length < 0) throw new ProtocolError("ERR_CIPHER", "Authentication failed: tag mismatch");
    this.#count++;
    return length;
  }

  /** Decrypts one unit; a failed tag throws `ProtocolError("ERR_CIPHER")`. */
  open(sealed: Uint8Array): Uint8Array {
    const plain = this.#primitive.open(this.#nonce(), sealed);
    if (plain === null) {
      throw new ProtocolError("ERR_CIPHER", "Authentication failed: tag mismatch");
    }
    this.#count++;
    return plain;
  }

  /** The current nonce, written into the shared buffer. */
  #nonce(): Uint8Array {
    const nonce = this.#extended ? XCHACHA_NONCE : NONCE;
    let count = this.#count;
    for (let i = 0; i < 7; i++) {
      nonce[i] = count % 256;
      count = Math.floor(count / 256);
    }
    return nonce;
  }
}
