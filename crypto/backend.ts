/**
 * Picks the crypto backend for each AEAD algorithm: `createAeadPrimitive(algorithm, key)`, and
 * for the stream ciphers: `createStreamBackendPrimitive(cipher, key, iv)`.
 *
 * Default: OpenSSL (libcrypto.so.3 through FFI) for every algorithm when it loads, else
 * node:crypto. Measured with bench/crypto_bench.ts (Deno 2.9.6, OpenSSL 3.0.19, 2-core AMD EPYC,
 * other work running), µs per seal: node:crypto / OpenSSL `seal` / OpenSSL `sealInto`:
 *
 * | algorithm         | 2 B               | 1 KiB             | 16 KiB           |
 * | ----------------- | ----------------- | ----------------- | ---------------- |
 * | aes-128-gcm       | 4.6 / 0.88 / 0.31 | 12.5 / 2.0 / 0.53 | 98 / 6.3 / 3.7   |
 * | aes-256-gcm       | 6.7 / 0.90 / 0.32 | 13.7 / 2.1 / 0.61 | 129 / 10.3 / 5.7 |
 * | chacha20-poly1305 | 8.6 / 1.5 / 0.82  | 10.5 / 2.3 / 0.75 | 21.6 / 8.6 / 5.0 |
 *
 * (open is alike; WebCrypto AES-GCM: 38–50 µs at 2 B–1 KiB, 66–97 µs at 16 KiB.) Relayed
 * through a server (bench/throughput.ts), node:crypto cost 7.7–9.1 CPU s per GB with
 * aes-256-gcm and 2.3–3.2 with chacha20-ietf-poly1305; OpenSSL 1.4–1.8 for both.
 *
 * OpenSSL wins at every size for every algorithm (Deno's node:crypto AES-GCM runs at about
 * 0.17 GB/s here, OpenSSL's at about 3.5 GB/s). WebCrypto is asynchronous and has no ChaCha20,
 * so it is benchmarked for comparison only. A session pays about 2.5 µs to make and key an
 * OpenSSL context against about 8 µs for node:crypto's first call.
 *
 * Override for tests and benchmarks: `SSDENO_CRYPTO=node|openssl` (read only when `--allow-env`
 * covers it; never prompts), or `setCryptoBackend()`, which wins over the variable. An explicit
 * `openssl` that cannot load is an error, not a silent fallback.
 *
 * Two algorithms do not follow the choice: XChaCha20-Poly1305 is always
 * crypto/xchacha20_poly1305.ts (HChaCha20 here, the AEAD from node:crypto; OpenSSL has no
 * XChaCha), and AES-192-GCM exists only with OpenSSL (Deno's node:crypto has no
 * `aes-192-gcm`), so with the node backend it is a `CipherUnavailableError`.
 *
 * Stream ciphers (`createStreamBackendPrimitive`) follow the same choice: OpenSSL has all of
 * them (RC4 and Blowfish through its legacy provider, see crypto/openssl_stream.ts); node:crypto
 * only AES-CTR and ChaCha20, so CFB, Camellia, Blowfish and RC4 need OpenSSL. Salsa20 and
 * `table` are our own code (crypto/stream_cipher.ts) and work with either.
 * @module
 */
import type { AeadPrimitive } from "./aead_primitive.ts";
import type { AeadAlgorithm } from "./methods.ts";
import { createNodeAead } from "./node_aead.ts";
import { useSha1Transform } from "./sha1.ts";
import { createNodeStream, isNodeStreamCipher } from "./node_stream.ts";
import { loadOpenSslAead, openSslUnavailableReason } from "./openssl_aead.ts";
import {
  loadOpenSslStream,
  type OpenSslStreamCipher,
  openSslStreamUnavailableReason,
} from "./openssl_stream.ts";
import type { StreamPrimitive } from "./stream_primitive.ts";
import { createXChaCha20Poly1305 } from "./xchacha20_poly1305.ts";

/**
 * A cipher the chosen backend cannot provide (e.g. `bf-cfb` without OpenSSL). Services meet it
 * at start (crypto/method_support.ts), before anything is bound; its message names the cipher
 * and what is missing.
 */
export class CipherUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CipherUnavailableError";
  }
}

/** The backends `createAeadPrimitive` can use. */
export type CryptoBackendName = "node" | "openssl";

const BACKEND_NAMES: readonly CryptoBackendName[] = ["node", "openssl"];
const ENV_VARIABLE = "SSDENO_CRYPTO";

/** The backend in use and a line for logs. */
export interface CryptoBackendChoice {
  readonly name: CryptoBackendName;
  /** Why this one: e.g. "openssl (OpenSSL 3.0.19, default)". */
  readonly detail: string;
}

let override: CryptoBackendName | undefined;
let resolved: CryptoBackendChoice | undefined;

/**
 * Forces a backend for every primitive made from now on (`undefined` restores the default).
 * Throws when `openssl` is asked for and cannot be loaded.
 */
export function setCryptoBackend(name: CryptoBackendName | undefined): void {
  if (name === "openssl" && !loadOpenSslAead()) throw new Error(openSslUnavailableReason());
  override = name;
  resolved = undefined;
}

/**
 * Which backend `createAeadPrimitive` uses, decided once (per override). Services may call this
 * at startup to log the choice and to fail early on a bad `SSDENO_CRYPTO`.
 */
export function resolveCryptoBackend(): CryptoBackendChoice {
  if (resolved) return resolved;
  const requested = override ?? readEnvironment();
  const source = override ? "setCryptoBackend()" : requested ? ENV_VARIABLE : "default";
  if (requested === "node") {
    resolved = { name: "node", detail: `node (node:crypto, ${source})` };
    useSha1Transform(null);
  } else {
    const openssl = loadOpenSslAead();
    if (openssl) {
      resolved = { name: "openssl", detail: `openssl (${openssl.version}, ${source})` };
      // HKDF-SHA1's block function (crypto/sha1.ts); checked there against its own.
      useSha1Transform(openssl.sha1Transform);
    } else if (requested === "openssl") {
      throw new Error(`${ENV_VARIABLE}=openssl: ${openSslUnavailableReason()}`);
    } else {
      resolved = { name: "node", detail: `node (fallback: ${openSslUnavailableReason()})` };
      useSha1Transform(null);
    }
  }
  return resolved;
}

/** Why `algorithm` cannot be made with the chosen backend; undefined when it can. */
export function aeadUnavailableReason(algorithm: AeadAlgorithm): string | undefined {
  if (algorithm !== "aes-192-gcm") return undefined;
  const choice = resolveCryptoBackend();
  if (choice.name === "openssl") return undefined;
  return `AES-192-GCM needs the OpenSSL backend (libcrypto.so.3 and --allow-ffi): Deno's ` +
    `node:crypto has no aes-192-gcm; in use: ${choice.detail}`;
}

/**
 * Makes a keyed primitive with the chosen backend. Throws `CipherUnavailableError` when the
 * backend lacks `algorithm` (see `aeadUnavailableReason`). Every backend copies `key`: the
 * caller may reuse its buffer (crypto/kdf.ts `sessionSubkeyView` does).
 */
export function createAeadPrimitive(algorithm: AeadAlgorithm, key: Uint8Array): AeadPrimitive {
  if (algorithm === "xchacha20-poly1305") return createXChaCha20Poly1305(key);
  if (resolveCryptoBackend().name === "openssl") {
    return loadOpenSslAead()!.createAead(algorithm, key);
  }
  const reason = aeadUnavailableReason(algorithm);
  if (reason !== undefined) throw new CipherUnavailableError(reason);
  return createNodeAead(algorithm, key);
}

/**
 * Why the chosen backend cannot make stream cipher `cipher`; undefined when it can. With the
 * OpenSSL backend chosen but its stream side not loading, node:crypto serves what it has.
 */
export function streamUnavailableReason(cipher: OpenSslStreamCipher): string | undefined {
  const choice = resolveCryptoBackend();
  if (choice.name === "openssl") {
    const openssl = loadOpenSslStream();
    if (openssl !== undefined) return openssl.unavailableReason(cipher);
    if (isNodeStreamCipher(cipher)) return undefined;
    return `${cipher} needs OpenSSL: ${openSslStreamUnavailableReason()}`;
  }
  if (isNodeStreamCipher(cipher)) return undefined;
  return `${cipher} needs the OpenSSL backend (libcrypto.so.3 and --allow-ffi): Deno's ` +
    `node:crypto has no ${cipher}; in use: ${choice.detail}`;
}

/**
 * A keyed direction of stream cipher `cipher` from the chosen backend. `chacha20` takes
 * OpenSSL's 16-byte IV (32-bit little-endian counter, 12-byte nonce). Throws
 * `CipherUnavailableError` when the backend lacks the cipher.
 */
export function createStreamBackendPrimitive(
  cipher: OpenSslStreamCipher,
  key: Uint8Array,
  iv: Uint8Array,
  options: { decrypt?: boolean } = {},
): StreamPrimitive {
  const reason = streamUnavailableReason(cipher);
  if (reason !== undefined) throw new CipherUnavailableError(reason);
  const openssl = resolveCryptoBackend().name === "openssl" ? loadOpenSslStream() : undefined;
  if (openssl !== undefined) return openssl.create(cipher, key, iv, options);
  // streamUnavailableReason has checked that node:crypto has it.
  if (!isNodeStreamCipher(cipher)) throw new Error(`Unreachable: no backend for ${cipher}`);
  return createNodeStream(cipher, key, iv);
}

function readEnvironment(): CryptoBackendName | undefined {
  const permission = Deno.permissions.querySync({ name: "env", variable: ENV_VARIABLE });
  if (permission.state !== "granted") return undefined;
  const value = Deno.env.get(ENV_VARIABLE);
  if (value === undefined || value === "") return undefined;
  const name = BACKEND_NAMES.find((candidate) => candidate === value.toLowerCase());
  if (!name) {
    throw new Error(
      `Invalid ${ENV_VARIABLE} "${value}": expected one of ${BACKEND_NAMES.join(", ")}`,
    );
  }
  return name;
}
