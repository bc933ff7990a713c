/**
 * The OpenSSL stream-cipher backend: AES-CFB128/CTR, Camellia-CFB128, Blowfish-CFB64, RC4,
 * ChaCha20 and SM4-CTR from the same `libcrypto.so.3` the AEAD backend opened
 * (crypto/openssl_aead.ts), called synchronously through `Deno.dlopen`.
 *
 * Ciphers are fetched by name in a library context of our own, into which the `default` and
 * `legacy` providers are loaded: OpenSSL 3 keeps RC4 and Blowfish in `legacy` only, and a private
 * context leaves the process-wide one (which the AEAD backend uses) as OpenSSL set it up. Without
 * the legacy provider (`ossl-modules/legacy.so` missing) RC4 and BF-CFB are unavailable and say
 * so; everything else still works.
 *
 * One `EVP_CIPHER_CTX` per primitive, keyed with key and IV once; each `EVP_CipherUpdate`
 * continues where the previous one stopped: OpenSSL keeps the CFB/CTR block position, the ChaCha20
 * in-block offset and the RC4 state in the context, so any split of the input gives the same
 * bytes. ChaCha20 takes a 16-byte IV: a 32-bit little-endian block counter, then a 12-byte nonce
 * (and carries an overflowing counter into the next word, which makes `00×8 ‖ nonce8` the original
 * 64-bit-counter ChaCha20). Contexts are freed by `dispose()` or, when a primitive is dropped, by a
 * `FinalizationRegistry`.
 * @module
 */
import { createCipheriv } from "node:crypto";
import { loadOpenSslAead, openSslUnavailableReason } from "./openssl_aead.ts";
import type { StreamPrimitive } from "./stream_primitive.ts";

/** The ciphers this backend can make, by our name. */
export type OpenSslStreamCipher =
  | "aes-128-cfb"
  | "aes-192-cfb"
  | "aes-256-cfb"
  | "aes-128-ctr"
  | "aes-192-ctr"
  | "aes-256-ctr"
  | "camellia-128-cfb"
  | "camellia-192-cfb"
  | "camellia-256-cfb"
  | "bf-cfb"
  | "rc4"
  | "chacha20"
  | "sm4-ctr";

/** OpenSSL's algorithm names (`openssl list -cipher-algorithms`). */
const OPENSSL_NAMES: Readonly<Record<OpenSslStreamCipher, string>> = {
  "aes-128-cfb": "AES-128-CFB",
  "aes-192-cfb": "AES-192-CFB",
  "aes-256-cfb": "AES-256-CFB",
  "aes-128-ctr": "AES-128-CTR",
  "aes-192-ctr": "AES-192-CTR",
  "aes-256-ctr": "AES-256-CTR",
  "camellia-128-cfb": "CAMELLIA-128-CFB",
  "camellia-192-cfb": "CAMELLIA-192-CFB",
  "camellia-256-cfb": "CAMELLIA-256-CFB",
  "bf-cfb": "BF-CFB",
  "rc4": "RC4",
  "chacha20": "ChaCha20",
  "sm4-ctr": "SM4-CTR",
};

/** The ciphers only OpenSSL's legacy provider has. */
const LEGACY: ReadonlySet<OpenSslStreamCipher> = new Set(["bf-cfb", "rc4"]);

const SYMBOLS = {
  OSSL_LIB_CTX_new: { parameters: [], result: "pointer" },
  OSSL_PROVIDER_load: { parameters: ["pointer", "buffer"], result: "pointer" },
  ERR_clear_error: { parameters: [], result: "void" },
  EVP_CIPHER_fetch: { parameters: ["pointer", "buffer", "buffer"], result: "pointer" },
  EVP_CIPHER_get_key_length: { parameters: ["pointer"], result: "i32" },
  EVP_CIPHER_get_iv_length: { parameters: ["pointer"], result: "i32" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A loaded libcrypto's stream ciphers. */
export interface OpenSslStreamBackend {
  /** e.g. "OpenSSL 3.0.19". */
  readonly version: string;
  /** Why `cipher` cannot be made here (e.g. the legacy provider is missing); else undefined. */
  unavailableReason(cipher: OpenSslStreamCipher): string | undefined;
  /** A keyed direction; throws when `unavailableReason(cipher)` says why not. */
  create(
    cipher: OpenSslStreamCipher,
    key: Uint8Array,
    iv: Uint8Array,
    options?: { decrypt?: boolean },
  ): StreamPrimitive;
  /** Native contexts currently allocated, for tests and stats. */
  readonly liveContexts: number;
}

let loaded: OpenSslStreamBackend | null | undefined;
let unavailableReason: string | undefined;

/** Why `loadOpenSslStream()` returned undefined; undefined when it loaded or was not tried. */
export function openSslStreamUnavailableReason(): string | undefined {
  return unavailableReason;
}

/**
 * Opens the stream-cipher side of libcrypto once per process (after the AEAD backend, whose
 * library path and permission checks it reuses), or returns undefined with a reason.
 */
export function loadOpenSslStream(): OpenSslStreamBackend | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  const aead = loadOpenSslAead();
  if (aead === undefined) {
    loaded = null;
    unavailableReason = openSslUnavailableReason();
    return undefined;
  }
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen(aead.path, SYMBOLS);
  } catch (error) {
    loaded = null;
    unavailableReason = `OpenSSL stream ciphers unavailable: ${aead.path}: ${messageOf(error)}`;
    return undefined;
  }
  try {
    const backend = createBackend(library.symbols, aead.version);
    const mismatch = selfTest(backend);
    if (mismatch) throw new Error(mismatch);
    loaded = backend;
    return backend;
  } catch (error) {
    library.close();
    loaded = null;
    unavailableReason = `OpenSSL stream ciphers unavailable: ${messageOf(error)}`;
    return undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** AES-128-CTR over a split input against node:crypto over the whole. */
function selfTest(backend: OpenSslStreamBackend): string | undefined {
  const key = new Uint8Array(16).map((_, i) => i);
  const iv = new Uint8Array(16).fill(0xfe);
  const plain = new Uint8Array(40).map((_, i) => i * 7);
  using ours = backend.create("aes-128-ctr", key, iv);
  const out = new Uint8Array(plain.length);
  ours.updateInto(plain.subarray(0, 5), out.subarray(0, 5));
  ours.updateInto(plain.subarray(5), out.subarray(5));
  const theirs = createCipheriv("aes-128-ctr", key, iv).update(plain);
  return out.every((byte, i) => byte === theirs[i])
    ? undefined
    : "self-test failed for AES-128-CTR";
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

function createBackend(symbols: Symbols, version: string): OpenSslStreamBackend {
  const libraryContext = symbols.OSSL_LIB_CTX_new();
  if (libraryContext === null) throw new Error("OSSL_LIB_CTX_new failed");
  if (symbols.OSSL_PROVIDER_load(libraryContext, cString("default")) === null) {
    throw new Error('OSSL_PROVIDER_load refused the "default" provider');
  }
  const legacyLoaded = symbols.OSSL_PROVIDER_load(libraryContext, cString("legacy")) !== null;
  // A failed load leaves errors on the thread's queue; nothing else reads them.
  symbols.ERR_clear_error();

  const fetched = new Map<OpenSslStreamCipher, Deno.PointerValue>();
  /** The fetched cipher (kept for the life of the process), or null when OpenSSL lacks it. */
  const fetch = (cipher: OpenSslStreamCipher): Deno.PointerValue => {
    if (!fetched.has(cipher)) {
      const pointer = symbols.EVP_CIPHER_fetch(
        libraryContext,
        cString(OPENSSL_NAMES[cipher]),
        null,
      );
      if (pointer === null) symbols.ERR_clear_error();
      fetched.set(cipher, pointer);
    }
    return fetched.get(cipher)!;
  };
  const reasonFor = (cipher: OpenSslStreamCipher): string | undefined => {
    if (fetch(cipher) !== null) return undefined;
    const name = OPENSSL_NAMES[cipher];
    if (LEGACY.has(cipher) && !legacyLoaded) {
      return `${version} has no ${name} here: its legacy provider did not load ` +
        "(is ossl-modules/legacy.so installed?)";
    }
    return `${version} has no ${name}`;
  };

  let live = 0;
  const outLength = new Int32Array(1);
  const release = (ctx: Deno.PointerObject): void => {
    symbols.EVP_CIPHER_CTX_free(ctx);
    live--;
  };
  const registry = new FinalizationRegistry<Deno.PointerObject>(release);

  class Primitive implements StreamPrimitive {
    #ctx: Deno.PointerObject | null;
    readonly #name: string;

    constructor(cipher: OpenSslStreamCipher, key: Uint8Array, iv: Uint8Array, decrypt: boolean) {
      const reason = reasonFor(cipher);
      if (reason !== undefined) throw new Error(reason);
      const evpCipher = fetch(cipher);
      this.#name = OPENSSL_NAMES[cipher];
      const keyLength = symbols.EVP_CIPHER_get_key_length(evpCipher);
      const ivLength = symbols.EVP_CIPHER_get_iv_length(evpCipher);
      if (key.length !== keyLength) {
        throw new RangeError(
          `Invalid ${this.#name} key: expected ${keyLength} bytes, got ${key.length}`,
        );
      }
      if (iv.length !== ivLength) {
        throw new RangeError(
          `Invalid ${this.#name} IV: expected ${ivLength} bytes, got ${iv.length}`,
        );
      }
      const ctx = symbols.EVP_CIPHER_CTX_new();
      if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed: out of memory");
      live++;
      const ok = symbols.EVP_CipherInit_ex(
        ctx,
        evpCipher,
        null,
        key,
        iv.length === 0 ? null : iv,
        decrypt ? 0 : 1,
      ) === 1;
      if (!ok) {
        release(ctx);
        symbols.ERR_clear_error();
        throw new Error(`OpenSSL refused to key ${this.#name}`);
      }
      this.#ctx = ctx;
      registry.register(this, ctx, this);
    }

    updateInto(input: Uint8Array, out: Uint8Array): void {
      const ctx = this.#ctx;
      if (ctx === null) throw new Error(`OpenSSL ${this.#name} primitive was disposed`);
      const length = input.length;
      if (length === 0) return;
      if (out.length < length) {
        throw new RangeError(
          `Output too small: expected at least ${length} bytes, got ${out.length}`,
        );
      }
      if (symbols.EVP_CipherUpdate(ctx, out, outLength, input, length) !== 1) {
        throw new Error(`OpenSSL ${this.#name} update failed`);
      }
    }

    dispose(): void {
      if (this.#ctx === null) return;
      registry.unregister(this);
      release(this.#ctx);
      this.#ctx = null;
    }

    [Symbol.dispose](): void {
      this.dispose();
    }
  }

  return {
    version,
    unavailableReason: reasonFor,
    create: (cipher, key, iv, options = {}) =>
      new Primitive(cipher, key, iv, options.decrypt ?? false),
    get liveContexts() {
      return live;
    },
  };
}
