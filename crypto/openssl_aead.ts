/**
 * The OpenSSL AEAD backend: AES-GCM (128, 192 and 256) and ChaCha20-Poly1305 from the system's
 * `libcrypto.so.3`, called through `Deno.dlopen` with synchronous (`nonblocking: false`) calls.
 *
 * Contexts are shared: each backend keeps a small cache of `CONTEXT_SLOTS` keyed contexts, and a
 * primitive holds only its key until it seals or opens. A call by the primitive that keyed a
 * slot last runs on it as it is; any other call takes a slot (round robin) and re-keys it first.
 * Only the IV is set per call:
 *
 * ```
 * take a slot:  (Encrypt|Decrypt)Init_ex(ctx, -, -, key, -)   (the cipher too when it differs)
 * seal: EncryptInit_ex(ctx, -, -, -, iv) → EncryptUpdate → EncryptFinal_ex → ctrl(GET_TAG)
 * open: DecryptInit_ex(ctx, -, -, -, iv) → DecryptUpdate → ctrl(SET_TAG) → DecryptFinal_ex
 * ```
 *
 * The backend is optional: `loadOpenSslAead()` returns undefined (and records why, see
 * `openSslUnavailableReason()`) when `--allow-ffi` is not granted, when the library cannot be
 * opened, or when it does not agree with `node:crypto` on a known answer.
 *
 * Why a cache, for memory: a keyed context costs about 1.9 KiB of native memory (2.5 KiB with
 * its primitive), and every session holds two per side, one per direction, for as long as it
 * lives, idle or not. Re-keying a slot costs 0.1–0.3 µs (AES-GCM, ChaCha20-Poly1305; a seal of
 * 64 B costs 0.35–0.55 µs), less than making, keying and freeing a context (0.5–0.8 µs), so a
 * session pays nothing to start with and a busy one, which keeps its slot while fewer than
 * `CONTEXT_SLOTS` directions are busy, pays nothing per call either. Thousands of sessions
 * busy at once re-key on most calls. No `FinalizationRegistry` either: a dropped primitive owns
 * nothing. `dispose()` frees the slots a primitive keyed last, for tests and short-lived
 * primitives; the cache itself lives as long as the process.
 * @module
 */
import { createCipheriv } from "node:crypto";
import type { AeadPrimitive } from "./aead_primitive.ts";
import type { AeadAlgorithm } from "./methods.ts";

const TAG_SIZE = 16;
const NONCE_SIZE = 12;
const EVP_CTRL_AEAD_SET_IVLEN = 0x9;
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/**
 * `OPENSSL_init_crypto` option: no `atexit` handler. OpenSSL's handler (`OPENSSL_cleanup`) frees
 * its global state on the thread that calls `exit()` while the threads that used the library may
 * still be exiting: Deno does not join them (the `deno test` module's thread, worker isolates),
 * and their OpenSSL thread-exit destructor then works on the freed state (`malloc_consolidate():
 * invalid chunk size` or a segfault at exit, about 3 exits in 1000 under load; openssl#6214).
 * Without the handler the OS reclaims that memory at exit, as OpenSSL's documentation allows.
 */
const OPENSSL_INIT_NO_ATEXIT = 0x0008_0000n;
/**
 * Keyed contexts per backend (per isolate): enough for every direction of the busiest runs
 * measured (8 streams, both directions, on each side) to keep its own, at about 2 KiB each.
 */
const CONTEXT_SLOTS = 64;
/** Where a primitive's key is spelled out to key a slot (zeroed right after). */
const KEY_BYTES = new Uint8Array(32);
/**
 * Where a tag is handed to OpenSSL and taken back: copying 16 bytes costs less than the view of
 * the caller's buffer that would point OpenSSL at the tag in place (a new object per call, two
 * calls a chunk).
 */
const TAG_BYTES = new Uint8Array(TAG_SIZE);

/** Where `libcrypto.so.3` is looked for, in order (a bare name uses the loader's search path). */
const LIBRARY_CANDIDATES: readonly string[] = [
  "libcrypto.so.3",
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/usr/lib64/libcrypto.so.3",
  "/usr/lib/libcrypto.so.3",
];

const SYMBOLS = {
  OpenSSL_version_num: { parameters: [], result: "u64" },
  OPENSSL_init_crypto: { parameters: ["u64", "pointer"], result: "i32" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  EVP_aes_128_gcm: { parameters: [], result: "pointer" },
  EVP_aes_192_gcm: { parameters: [], result: "pointer" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // For crypto/sha1.ts; a low-level call that OpenSSL 3 deprecates (a build may leave it out).
  SHA1_Transform: { parameters: ["buffer", "buffer"], result: "void", optional: true },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The algorithms OpenSSL has (XChaCha20-Poly1305 is not among them). */
type OpenSslAeadAlgorithm = Exclude<AeadAlgorithm, "xchacha20-poly1305">;

const KEY_SIZES: Readonly<Record<OpenSslAeadAlgorithm, number>> = {
  "aes-128-gcm": 16,
  "aes-192-gcm": 24,
  "aes-256-gcm": 32,
  "chacha20-poly1305": 32,
};

/** A keyed OpenSSL AEAD; `dispose()` returns its native context early (idempotent). */
export interface OpenSslAead extends AeadPrimitive, Disposable {
  /**
   * Seals into `out` (which must hold `plaintext.length + tagSize` bytes from its start);
   * returns the bytes written.
   */
  sealInto(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): number;
  /**
   * Opens into `out` (at least `sealed.length - tagSize` bytes; may be the ciphertext itself,
   * for in-place decryption); returns the plaintext length, or -1 when the tag does not verify.
   */
  openInto(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): number;
  dispose(): void;
}

/** A loaded libcrypto: makes primitives. */
export interface OpenSslBackend {
  /** From `OpenSSL_version_num()`, e.g. "OpenSSL 3.0.19". */
  readonly version: string;
  /** The library path that was opened. */
  readonly path: string;
  /** Throws `RangeError` for `xchacha20-poly1305`, which OpenSSL does not have. */
  createAead(algorithm: AeadAlgorithm, key: Uint8Array): OpenSslAead;
  /** Native contexts currently allocated, for tests and stats. */
  readonly liveContexts: number;
  /** `SHA1_Transform`, when the library has it (crypto/sha1.ts). */
  readonly sha1Transform: ((context: Uint8Array, block: Uint8Array) => void) | null;
}

const FFI_NOT_GRANTED = " --allow-ffi is not granted";

let loaded: OpenSslBackend | null | undefined;
let unavailableReason: string | undefined;

/** Why `loadOpenSslAead()` returned undefined; undefined when it loaded or was not tried. */
export function openSslUnavailableReason(): string | undefined {
  return unavailableReason;
}

/**
 * Opens libcrypto once per process and returns the backend, or undefined when it cannot be used
 * (the reason is kept for `openSslUnavailableReason()`). Never prompts for a permission: a
 * missing `--allow-ffi` counts as unavailable.
 */
export function loadOpenSslAead(): OpenSslBackend | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  const errors: string[] = [];
  for (const path of LIBRARY_CANDIDATES) {
    let state: Deno.PermissionState;
    try {
      state = Deno.permissions.querySync({ name: "ffi", path }).state;
    } catch (error) {
      errors.push(`${path}: ${messageOf(error)}`);
      continue;
    }
    if (state !== "granted") {
      errors.push(`${path}:${FFI_NOT_GRANTED}`);
      continue;
    }
    let library: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      library = Deno.dlopen(path, SYMBOLS);
    } catch (error) {
      errors.push(`${path}: ${messageOf(error)}`);
      continue;
    }
    let backend: OpenSslBackend;
    try {
      // First, before any call that initializes the library (its first initialization decides
      // whether an atexit handler is registered; later ones, e.g. from another isolate, keep it).
      if (library.symbols.OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, null) !== 1) {
        throw new Error("OPENSSL_init_crypto failed");
      }
      backend = createBackend(library.symbols, path);
      const mismatch = selfTest(backend);
      if (mismatch) throw new Error(mismatch);
    } catch (error) {
      errors.push(`${path}: ${messageOf(error)}`);
      library.close();
      continue;
    }
    loaded = backend;
    unavailableReason = undefined;
    return backend;
  }
  loaded = null;
  unavailableReason = errors.every((error) => error.endsWith(FFI_NOT_GRANTED))
    ? `OpenSSL backend unavailable:${FFI_NOT_GRANTED}`
    : `OpenSSL backend unavailable: ${errors.join("; ")}`;
  return undefined;
}

/** OpenSSL reads 12 bytes of IV whatever the buffer holds: a shorter nonce would be read past. */
function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== NONCE_SIZE) {
    throw new RangeError(`Invalid nonce length: expected ${NONCE_SIZE}, got ${nonce.length}`);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Seals one byte with every algorithm and compares with node:crypto. */
function selfTest(backend: OpenSslBackend): string | undefined {
  const algorithms: AeadAlgorithm[] = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"];
  for (const algorithm of algorithms) {
    const key = new Uint8Array(algorithm === "aes-128-gcm" ? 16 : 32).map((_, i) => i);
    const nonce = new Uint8Array(NONCE_SIZE).fill(7);
    const plain = new Uint8Array([0x5a]);
    using aead = backend.createAead(algorithm, key);
    const ours = aead.seal(nonce, plain);
    // deno-lint-ignore no-explicit-any
    const cipher = createCipheriv(algorithm as any, key, nonce, { authTagLength: TAG_SIZE } as any);
    const first = cipher.update(plain);
    cipher.final();
    const theirs = [...first, ...cipher.getAuthTag()];
    const opened = aead.open(nonce, ours);
    if (
      ours.length !== theirs.length || ours.some((byte, i) => byte !== theirs[i]) ||
      opened === null || opened[0] !== 0x5a
    ) {
      return `self-test failed for ${algorithm}`;
    }
  }
  return undefined;
}

function createBackend(symbols: Symbols, path: string): OpenSslBackend {
  // 0xMNN00PP0 for OpenSSL 3: major, minor, patch. (Read as a number rather than through
  // OpenSSL_version(), because UnsafePointerView needs an unscoped --allow-ffi.)
  const number = BigInt(symbols.OpenSSL_version_num());
  const version = `OpenSSL ${number >> 28n}.${(number >> 20n) & 0xffn}.${(number >> 4n) & 0xffn}`;
  const ciphers: Record<OpenSslAeadAlgorithm, Deno.PointerValue> = {
    "aes-128-gcm": symbols.EVP_aes_128_gcm(),
    "aes-192-gcm": symbols.EVP_aes_192_gcm(),
    "aes-256-gcm": symbols.EVP_aes_256_gcm(),
    "chacha20-poly1305": symbols.EVP_chacha20_poly1305(),
  };
  let live = 0;
  // One scratch out-length cell for every call: calls are synchronous, so nothing interleaves.
  const outLength = new Int32Array(1);
  /** The contexts of the cache (null: not made yet, or freed by a dispose). */
  const contexts: (Deno.PointerObject | null)[] = new Array(CONTEXT_SLOTS).fill(null);
  /** Which primitive (by id, 0: none) keyed each slot last, for which cipher and direction. */
  const owners = new Float64Array(CONTEXT_SLOTS);
  const slotCiphers: (OpenSslAeadAlgorithm | undefined)[] = new Array(CONTEXT_SLOTS);
  const slotEncrypts = new Uint8Array(CONTEXT_SLOTS);
  let hand = 0;
  let nextId = 1;

  /**
   * The next slot round robin, whoever keyed it last, keyed now with `key` for `algorithm` in
   * the direction asked and owned by `owner`. Its context is made on first use.
   */
  const take = (
    owner: number,
    algorithm: OpenSslAeadAlgorithm,
    keyText: string,
    encrypt: boolean,
  ): number => {
    const key = KEY_BYTES;
    for (let i = 0; i < keyText.length; i++) key[i] = keyText.charCodeAt(i);
    const slot = hand;
    hand = (hand + 1) % CONTEXT_SLOTS;
    let ctx = contexts[slot] ?? null;
    const init = encrypt ? symbols.EVP_EncryptInit_ex : symbols.EVP_DecryptInit_ex;
    let ok: boolean;
    if (ctx === null || slotCiphers[slot] !== algorithm) {
      if (ctx === null) {
        ctx = symbols.EVP_CIPHER_CTX_new();
        if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed: out of memory");
        contexts[slot] = ctx;
        live++;
      }
      ok = init(ctx, ciphers[algorithm], null, null, null) === 1 &&
        symbols.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_SIZE, null) === 1 &&
        init(ctx, null, null, key, null) === 1;
    } else {
      ok = init(ctx, null, null, key, null) === 1;
    }
    key.fill(0);
    if (!ok) {
      owners[slot] = 0;
      slotCiphers[slot] = undefined;
      throw new Error(`OpenSSL refused to key ${algorithm}`);
    }
    owners[slot] = owner;
    slotCiphers[slot] = algorithm;
    slotEncrypts[slot] = encrypt ? 1 : 0;
    return slot;
  };
  /** Frees the slot's context if `owner` keyed it last. */
  const free = (slot: number, owner: number): void => {
    if (slot < 0 || owners[slot] !== owner) return;
    symbols.EVP_CIPHER_CTX_free(contexts[slot]!);
    contexts[slot] = null;
    owners[slot] = 0;
    slotCiphers[slot] = undefined;
    live--;
  };

  class Aead implements OpenSslAead {
    readonly tagSize = TAG_SIZE;
    readonly #algorithm: OpenSslAeadAlgorithm;
    /**
     * The key, one byte per character: a short string costs about 50 bytes of heap against
     * about 200 for a 16–32-byte typed array, and every session holds two primitives per side
     * for its whole life (bench/throughput.ts, idle memory). It becomes bytes again, in
     * `KEY_BYTES`, only when the primitive takes a slot.
     */
    readonly #key: string;
    readonly #id = nextId++;
    /** The slots this primitive keyed last for sealing and for opening (-1: none yet). */
    #sealSlot = -1;
    #openSlot = -1;
    #disposed = false;

    constructor(algorithm: AeadAlgorithm, key: Uint8Array) {
      if (algorithm === "xchacha20-poly1305") {
        throw new RangeError("OpenSSL has no XChaCha20-Poly1305: see crypto/xchacha20_poly1305.ts");
      }
      const expected = KEY_SIZES[algorithm];
      if (key.length !== expected) {
        throw new RangeError(
          `Invalid key length for ${algorithm}: expected ${expected}, got ${key.length}`,
        );
      }
      this.#algorithm = algorithm;
      // `apply` over the bytes: six times faster than a spread here (measured, 16-byte keys).
      this.#key = String.fromCharCode.apply(null, key as unknown as number[]);
    }

    seal(nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
      const out = new Uint8Array(plaintext.length + TAG_SIZE);
      this.sealInto(nonce, plaintext, out);
      return out;
    }

    open(nonce: Uint8Array, sealed: Uint8Array): Uint8Array | null {
      if (sealed.length < TAG_SIZE) return null;
      const out = new Uint8Array(sealed.length - TAG_SIZE);
      return this.openInto(nonce, sealed, out) < 0 ? null : out;
    }

    sealInto(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): number {
      const length = plaintext.length;
      if (out.length < length + TAG_SIZE) {
        throw new RangeError(
          `Output too small: expected at least ${length + TAG_SIZE} bytes, got ${out.length}`,
        );
      }
      checkNonce(nonce);
      const ctx = this.#context(true);
      // Final writes nothing for these modes; the tag comes out through TAG_BYTES.
      const ok = symbols.EVP_EncryptInit_ex(ctx, null, null, null, nonce) === 1 &&
        (length === 0 ||
          symbols.EVP_EncryptUpdate(ctx, out, outLength, plaintext, length) === 1) &&
        symbols.EVP_EncryptFinal_ex(ctx, TAG_BYTES, outLength) === 1 &&
        symbols.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_SIZE, TAG_BYTES) === 1;
      if (!ok) throw new Error(`OpenSSL ${this.#algorithm} seal failed`);
      for (let i = 0; i < TAG_SIZE; i++) out[length + i] = TAG_BYTES[i]!;
      return length + TAG_SIZE;
    }

    openInto(nonce: Uint8Array, sealed: Uint8Array, out: Uint8Array): number {
      if (sealed.length < TAG_SIZE) return -1;
      const length = sealed.length - TAG_SIZE;
      if (out.length < length) {
        throw new RangeError(
          `Output too small: expected at least ${length} bytes, got ${out.length}`,
        );
      }
      checkNonce(nonce);
      const ctx = this.#context(false);
      // The tag is set before the update, so in-place decryption (out = sealed) cannot clobber it.
      for (let i = 0; i < TAG_SIZE; i++) TAG_BYTES[i] = sealed[length + i]!;
      const ok = symbols.EVP_DecryptInit_ex(ctx, null, null, null, nonce) === 1 &&
        symbols.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, TAG_BYTES) === 1 &&
        (length === 0 ||
          symbols.EVP_DecryptUpdate(ctx, out, outLength, sealed, length) === 1);
      if (!ok) throw new Error(`OpenSSL ${this.#algorithm} open failed`);
      // Final writes nothing for these modes; it returns 0 exactly when the tag does not verify.
      return symbols.EVP_DecryptFinal_ex(ctx, out, outLength) === 1 ? length : -1;
    }

    prepareSeal(): void {
      if (!this.#disposed) this.#context(true);
    }

    dispose(): void {
      if (this.#disposed) return;
      this.#disposed = true;
      free(this.#sealSlot, this.#id);
      free(this.#openSlot, this.#id);
      this.#sealSlot = this.#openSlot = -1;
    }

    [Symbol.dispose](): void {
      this.dispose();
    }

    /** A context keyed by this primitive for the direction: its last slot, or a new one. */
    #context(encrypt: boolean): Deno.PointerObject {
      const id = this.#id;
      let slot = encrypt ? this.#sealSlot : this.#openSlot;
      if (slot < 0 || owners[slot] !== id || slotEncrypts[slot] !== (encrypt ? 1 : 0)) {
        if (this.#disposed) throw new Error(`OpenSSL ${this.#algorithm} primitive was disposed`);
        slot = take(id, this.#algorithm, this.#key, encrypt);
        if (encrypt) this.#sealSlot = slot;
        else this.#openSlot = slot;
      }
      return contexts[slot]!;
    }
  }

  return {
    version,
    path,
    createAead: (algorithm, key) => new Aead(algorithm, key),
    get liveContexts() {
      return live;
    },
    sha1Transform: symbols.SHA1_Transform,
  };
}
