/**
 * One raw AES block (16 bytes, no mode, no padding): what SIP022 uses to hide the UDP separate
 * header and SIP023 uses for identity headers. The key length picks the variant: 16 bytes is
 * AES-128, 32 bytes AES-256.
 *
 * Backend: `node:crypto` `aes-*-ecb` with padding off. ECB has no chaining, so one long-lived
 * cipher object handles any number of blocks through `update()` (about 2 µs a block here, against
 * about 4 µs for a fresh cipher per block); `final()` is never called.
 * @module
 */
import { type Cipheriv, createCipheriv, createDecipheriv, type Decipheriv } from "node:crypto";

/** AES block size in bytes. */
export const AES_BLOCK_SIZE = 16;

/** A keyed AES block cipher. */
export interface AesBlockCipher {
  /** Encrypts exactly one 16-byte block. */
  encrypt(block: Uint8Array): Uint8Array;
  /** Decrypts exactly one 16-byte block. */
  decrypt(block: Uint8Array): Uint8Array;
}

/** Creates a block cipher for a 16-byte (AES-128) or 32-byte (AES-256) key. */
export function createAesBlockCipher(key: Uint8Array): AesBlockCipher {
  let algorithm: "aes-128-ecb" | "aes-256-ecb";
  if (key.length === 16) algorithm = "aes-128-ecb";
  else if (key.length === 32) algorithm = "aes-256-ecb";
  else throw new RangeError(`Invalid AES key length ${key.length}: expected 16 or 32`);
  let encryptor: Cipheriv | undefined;
  let decryptor: Decipheriv | undefined;
  return {
    encrypt(block: Uint8Array): Uint8Array {
      checkBlock(block);
      if (encryptor === undefined) {
        encryptor = createCipheriv(algorithm, key, null);
        encryptor.setAutoPadding(false);
      }
      return oneBlock(encryptor.update(block));
    },
    decrypt(block: Uint8Array): Uint8Array {
      checkBlock(block);
      if (decryptor === undefined) {
        decryptor = createDecipheriv(algorithm, key, null);
        decryptor.setAutoPadding(false);
      }
      return oneBlock(decryptor.update(block));
    },
  };
}

/**
 * One block with a key used once (SIP023 identity headers: a subkey per connection). The cipher
 * is finished with `final()`, which frees its native state at once: an unfinished node:crypto
 * cipher keeps about 1 KiB of native memory in Deno 2.9, and one per connection from anyone who
 * sends 75 bytes would grow the process without bound (found by the fuzzer).
 */
export function aesBlockOnce(
  key: Uint8Array,
  block: Uint8Array,
  direction: "encrypt" | "decrypt",
): Uint8Array {
  checkBlock(block);
  const algorithm = key.length === 16 ? "aes-128-ecb" : key.length === 32 ? "aes-256-ecb" : "";
  if (algorithm === "") {
    throw new RangeError(`Invalid AES key length ${key.length}: expected 16 or 32`);
  }
  const cipher = direction === "encrypt"
    ? createCipheriv(algorithm, key, null)
    : createDecipheriv(algorithm, key, null);
  cipher.setAutoPadding(false);
  const out = cipher.update(block);
  cipher.final();
  return oneBlock(out);
}

const cache = new WeakMap<Uint8Array, AesBlockCipher>();

/**
 * The block cipher for `key`, created once per key object and kept while the key is alive
 * (a PSK lives as long as its config), so per-packet calls do not re-key.
 */
export function aesBlockCipherFor(key: Uint8Array): AesBlockCipher {
  let cipher = cache.get(key);
  if (cipher === undefined) {
    cipher = createAesBlockCipher(key);
    cache.set(key, cipher);
  }
  return cipher;
}

function checkBlock(block: Uint8Array): void {
  if (block.length !== AES_BLOCK_SIZE) {
    throw new RangeError(
      `Invalid AES block: expected ${AES_BLOCK_SIZE} bytes, got ${block.length}`,
    );
  }
}

function oneBlock(out: Uint8Array): Uint8Array {
  // Padding is off, so a block in gives a block out; anything else means the backend changed.
  if (out.length !== AES_BLOCK_SIZE) {
    throw new Error(`AES backend returned ${out.length} bytes for one block`);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
