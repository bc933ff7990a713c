/**
 * The legacy stream ciphers (NOTES §3.3, §5) behind one call: `createStreamCipher(algorithm,
 * key, iv)` gives one direction whose keystream runs on across calls. Which code runs:
 *
 * | algorithm                                  | implementation                                   |
 * | ------------------------------------------ | ------------------------------------------------ |
 * | aes-*-cfb, aes-*-ctr, camellia-*-cfb       | backend (OpenSSL; node:crypto has AES-CTR only)  |
 * | bf-cfb, rc4                                | OpenSSL's legacy provider                        |
 * | rc4-md5                                    | RC4 keyed with MD5(key ‖ IV)                     |
 * | chacha20 (8-byte nonce, 64-bit counter)    | backend ChaCha20, IV = 00×8 ‖ nonce              |
 * | chacha20-ietf (12-byte nonce, RFC 8439)    | backend ChaCha20, IV = 00×4 ‖ nonce              |
 * | xchacha20 (vectors only)                   | HChaCha20 subkey, then chacha20 on nonce[16..24] |
 * | salsa20, xsalsa20 (vectors only)           | crypto/salsa20.ts (no backend has Salsa20)       |
 * | sm4-ctr (vectors only)                     | OpenSSL                                          |
 * | table                                      | crypto/table_cipher.ts (key = raw password)      |
 *
 * "Backend" is the choice of crypto/backend.ts. `rc4`, `xchacha20`, `xsalsa20` and `sm4-ctr` are
 * not methods ssdeno offers; they are here because the published vectors cover them and they cost
 * a line each.
 * @module
 */
import { createHash } from "node:crypto";
import { createStreamBackendPrimitive, streamUnavailableReason } from "./backend.ts";
import type { StreamMethodName } from "./methods.ts";
import type { OpenSslStreamCipher } from "./openssl_stream.ts";
import { createSalsa20, createXSalsa20 } from "./salsa20.ts";
import type { StreamPrimitive } from "./stream_primitive.ts";
import { createTableCipher } from "./table_cipher.ts";
import { hchacha20 } from "./xchacha20_poly1305.ts";

export type { StreamPrimitive };

/** Every stream cipher this module makes: the methods' and a few more the vectors cover. */
export type StreamAlgorithm = StreamMethodName | "rc4" | "xchacha20" | "xsalsa20" | "sm4-ctr";

/** Key and IV lengths in bytes (`table` takes a password of any length as its key). */
export const STREAM_ALGORITHM_SIZES: Readonly<
  Record<StreamAlgorithm, { readonly keySize: number; readonly ivSize: number }>
> = {
  "table": { keySize: 0, ivSize: 0 },
  "rc4": { keySize: 16, ivSize: 0 },
  "rc4-md5": { keySize: 16, ivSize: 16 },
  "aes-128-cfb": { keySize: 16, ivSize: 16 },
  "aes-192-cfb": { keySize: 24, ivSize: 16 },
  "aes-256-cfb": { keySize: 32, ivSize: 16 },
  "aes-128-ctr": { keySize: 16, ivSize: 16 },
  "aes-192-ctr": { keySize: 24, ivSize: 16 },
  "aes-256-ctr": { keySize: 32, ivSize: 16 },
  "camellia-128-cfb": { keySize: 16, ivSize: 16 },
  "camellia-192-cfb": { keySize: 24, ivSize: 16 },
  "camellia-256-cfb": { keySize: 32, ivSize: 16 },
  "bf-cfb": { keySize: 16, ivSize: 8 },
  "chacha20": { keySize: 32, ivSize: 8 },
  "chacha20-ietf": { keySize: 32, ivSize: 12 },
  "xchacha20": { keySize: 32, ivSize: 24 },
  "salsa20": { keySize: 32, ivSize: 8 },
  "xsalsa20": { keySize: 32, ivSize: 24 },
  "sm4-ctr": { keySize: 16, ivSize: 16 },
};

/** Options of {@linkcode createStreamCipher}. */
export interface StreamCipherOptions {
  /** Decrypt rather than encrypt: matters for CFB and `table` only. Default false. */
  decrypt?: boolean;
}

/** The backend cipher an algorithm runs on, or undefined for our own code. */
function backendCipher(algorithm: StreamAlgorithm): OpenSslStreamCipher | undefined {
  switch (algorithm) {
    case "table":
    case "salsa20":
    case "xsalsa20":
      return undefined;
    case "rc4-md5":
      return "rc4";
    case "chacha20":
    case "chacha20-ietf":
    case "xchacha20":
      return "chacha20";
    default:
      return algorithm;
  }
}

/**
 * Why `algorithm` cannot be made with the crypto backend in use (e.g. `bf-cfb` without
 * OpenSSL's legacy provider); undefined when it can.
 */
export function streamCipherUnavailableReason(algorithm: StreamAlgorithm): string | undefined {
  const cipher = backendCipher(algorithm);
  return cipher === undefined ? undefined : streamUnavailableReason(cipher);
}

/** The RC4 key of `rc4-md5` for one IV: MD5(key ‖ IV). */
export function rc4Md5Key(key: Uint8Array, iv: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("md5").update(key).update(iv).digest());
}

/**
 * One direction of `algorithm` keyed with `key` and `iv`. Throws `RangeError` for a key or IV
 * of the wrong length and `CipherUnavailableError` (crypto/backend.ts) when the backend in use
 * lacks the cipher.
 */
export function createStreamCipher(
  algorithm: StreamAlgorithm,
  key: Uint8Array,
  iv: Uint8Array,
  options: StreamCipherOptions = {},
): StreamPrimitive {
  const sizes = STREAM_ALGORITHM_SIZES[algorithm];
  if (algorithm !== "table" && key.length !== sizes.keySize) {
    throw new RangeError(
      `Invalid ${algorithm} key: expected ${sizes.keySize} bytes, got ${key.length}`,
    );
  }
  if (iv.length !== sizes.ivSize) {
    throw new RangeError(
      `Invalid ${algorithm} IV: expected ${sizes.ivSize} bytes, got ${iv.length}`,
    );
  }
  switch (algorithm) {
    case "table":
      return createTableCipher(key, options);
    case "salsa20":
      return createSalsa20(key, iv);
    case "xsalsa20":
      return createXSalsa20(key, iv);
    case "rc4-md5":
      return createStreamBackendPrimitive("rc4", rc4Md5Key(key, iv), new Uint8Array(0), options);
    case "chacha20":
      // A 64-bit counter from 0 in words 12–13, then the 8-byte nonce.
      return createStreamBackendPrimitive("chacha20", key, counterAndNonce(8, iv), options);
    case "chacha20-ietf":
      // RFC 8439: a 32-bit counter from 0 in word 12, then the 12-byte nonce.
      return createStreamBackendPrimitive("chacha20", key, counterAndNonce(4, iv), options);
    case "xchacha20":
      return createStreamBackendPrimitive(
        "chacha20",
        hchacha20(key, iv.subarray(0, 16)),
        counterAndNonce(8, iv.subarray(16)),
        options,
      );
    default:
      return createStreamBackendPrimitive(algorithm, key, iv, options);
  }
}

/** OpenSSL's 16-byte ChaCha20 IV: `counterBytes` zero counter bytes, then the nonce. */
function counterAndNonce(counterBytes: number, nonce: Uint8Array): Uint8Array {
  const iv = new Uint8Array(16);
  iv.set(nonce, counterBytes);
  return iv;
}
