/**
 * AEAD-2017 (SIP004 + SIP007) and `none` behind the {@linkcode StreamFraming} seam. Each
 * direction is the sender's salt, then AEAD chunks (protocol/aead_chunk.ts, 0x3FFF max); the
 * client's first plaintext starts with the target address, which may span chunks:
 *
 * ```
 * +------+--------------------------------------+-------------------+
 * | salt | chunk(ATYP addr port ‖ payload ...)  | chunk(payload)... |   client → server
 * +------+--------------------------------------+-------------------+
 * | salt | chunk(payload) ...                                       |   server → client
 * +------+----------------------------------------------------------+
 *
 * none: | ATYP addr port | payload ... (no salt, no tags, for testing only)
 * ```
 *
 * Replay (server): a client salt is checked against the filter only once its first length
 * block authenticated, so junk cannot fill the filter; the server's own salts are recorded too,
 * so a reply reflected back at the server is refused (`ERR_REPLAY`).
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { deriveSessionSubkey } from "../crypto/kdf.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { type Address, decodeAddress, encodeAddress } from "./address.ts";
import { ChunkDecoder, type ChunkStep, MAX_AEAD_PAYLOAD, sealChunks } from "./aead_chunk.ts";
import { ProtocolError } from "./errors.ts";
import type { ReplayFilter } from "./replay_filter.ts";
import type { FramingStep, StreamFraming } from "./stream_framing.ts";
import { concatBytes } from "../crypto/bytes.ts";

/** Longest address header: ATYP + length + 255-byte name + port. */
const MAX_ADDRESS_LENGTH = 1 + 1 + 255 + 2;

/** Options of {@linkcode aeadServerFraming}. */
export interface AeadServerFramingOptions {
  /** Salts of the listener; absent: no replay check (for tests). */
  replayFilter?: ReplayFilter;
}

/**
 * The server side of one connection: opens the client's salt, chunks and address header, and
 * seals the answer.
 */
export function aeadServerFraming(
  method: MethodInfo,
  masterKey: Uint8Array,
  options: AeadServerFramingOptions = {},
): StreamFraming {
  const filter = options.replayFilter;
  const reader = new RequestReader(
    method.family === "none" ? new PlainReader() : new SaltedChunkReader(method, masterKey, {
      onSalt: (salt) => {
        if (filter?.checkAndAdd(salt)) {
          throw new ProtocolError("ERR_REPLAY", "Salt seen before: replayed connection");
        }
      },
    }),
  );
  const writer = new ChunkWriter(method, masterKey, (salt) => filter?.addOwn(salt));
  return new AeadFraming(reader, writer);
}

/**
 * The client side of one connection to `target`: the first seal sends the salt and the address
 * header in front of the first payload (just the address when there is none yet).
 */
export function aeadClientFraming(
  method: MethodInfo,
  masterKey: Uint8Array,
  target: Address,
): StreamFraming {
  const reader = method.family === "none"
    ? new PlainReader()
    : new SaltedChunkReader(method, masterKey, {});
  return new AeadFraming(reader, new ChunkWriter(method, masterKey), encodeAddress(target));
}

/** The `next`/`wanted` shape shared by the readers here and `ChunkDecoder`. */
interface Reader {
  readonly wanted: number;
  readonly atChunkBoundary: boolean;
  next(input: Uint8Array): FramingStep;
}

/**
 * A reader and a writer as one {@linkcode StreamFraming}. A class rather than an object literal
 * with getters: one is made per session, and the literal costs a dictionary and closures.
 */
class AeadFraming implements StreamFraming {
  readonly #reader: Reader;
  readonly #writer: ChunkWriter;
  /** The client's address header, sent in front of its first payload. */
  #header: Uint8Array | undefined;

  constructor(reader: Reader, writer: ChunkWriter, header?: Uint8Array) {
    this.#reader = reader;
    this.#writer = writer;
    this.#header = header;
  }

  get wanted(): number {
    return this.#reader.wanted;
  }

  get atChunkBoundary(): boolean {
    return this.#reader.atChunkBoundary;
  }

  open(input: Uint8Array): FramingStep {
    return this.#reader.next(input);
  }

  seal(plain: Uint8Array): Uint8Array {
    const header = this.#header;
    if (header === undefined) return this.#writer.seal(plain);
    this.#header = undefined;
    return this.#writer.seal(concatBytes(header, plain));
  }
}

/** Salt, then chunks; reports the salt once the first length block authenticated. */
class SaltedChunkReader implements Reader {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  readonly #onSalt: ((salt: Uint8Array) => void) | undefined;
  #chunks: ChunkDecoder | undefined;
  #salt: Uint8Array | undefined;
  #authenticated = false;

  constructor(
    method: MethodInfo,
    masterKey: Uint8Array,
    hooks: { onSalt?: (salt: Uint8Array) => void },
  ) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#onSalt = hooks.onSalt;
  }

  get wanted(): number {
    return this.#chunks === undefined ? this.#method.saltSize : this.#chunks.wanted;
  }

  /** A salt alone is no clean end: nothing after it ever authenticated. */
  get atChunkBoundary(): boolean {
    return this.#authenticated && this.#chunks!.atChunkBoundary;
  }

  next(input: Uint8Array): ChunkStep {
    let consumed = 0;
    if (this.#chunks === undefined) {
      const size = this.#method.saltSize;
      if (input.length < size) return { consumed: 0, payload: null };
      this.#salt = input.slice(0, size);
      const subkey = deriveSessionSubkey(this.#masterKey, this.#salt);
      this.#chunks = new ChunkDecoder(new AeadCipher(this.#method.algorithm!, subkey));
      consumed = size;
    }
    const step = this.#chunks.next(input.subarray(consumed));
    if (step.consumed > 0 && !this.#authenticated) {
      // The length block authenticated: only now is the salt worth a replay check.
      this.#authenticated = true;
      this.#onSalt?.(this.#salt!);
      this.#salt = undefined;
    }
    return { consumed: consumed + step.consumed, payload: step.payload };
  }
}

/** `none`: whatever arrives is payload. */
class PlainReader implements Reader {
  readonly wanted = 1;
  readonly atChunkBoundary = true;

  next(input: Uint8Array): ChunkStep {
    if (input.length === 0) return { consumed: 0, payload: null };
    return { consumed: input.length, payload: input.slice() };
  }
}

/**
 * Peels the address header off the front of the client's plaintext (it may span chunks) and
 * reports it with the rest of the payload that completed it.
 */
class RequestReader implements Reader {
  readonly #inner: Reader;
  #head: Uint8Array | undefined = new Uint8Array(0);

  constructor(inner: Reader) {
    this.#inner = inner;
  }

  get wanted(): number {
    return this.#inner.wanted;
  }

  get atChunkBoundary(): boolean {
    return this.#inner.atChunkBoundary;
  }

  next(input: Uint8Array): FramingStep {
    const step = this.#inner.next(input);
    if (this.#head === undefined || step.payload === null) return step;
    const head = this.#head.length === 0 ? step.payload : concatBytes(this.#head, step.payload);
    const decoded = decodeAddress(head);
    if (decoded === undefined) {
      if (head.length >= MAX_ADDRESS_LENGTH) {
        throw new ProtocolError("ERR_READ_ADDRESS", "Address header too long");
      }
      this.#head = head;
      return { consumed: step.consumed, payload: null };
    }
    this.#head = undefined;
    return {
      consumed: step.consumed,
      payload: head.subarray(decoded.length),
      request: { address: decoded.address },
    };
  }
}

/** Our direction: salt in front of the first chunks, in the same buffer. */
class ChunkWriter {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  readonly #onSalt: ((salt: Uint8Array) => void) | undefined;
  #cipher: AeadCipher | undefined;

  constructor(method: MethodInfo, masterKey: Uint8Array, onSalt?: (salt: Uint8Array) => void) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#onSalt = onSalt;
  }

  seal(plain: Uint8Array): Uint8Array {
    if (this.#method.family === "none") return plain.slice();
    if (this.#cipher !== undefined) return sealChunks(this.#cipher, plain, MAX_AEAD_PAYLOAD);
    if (plain.length === 0) return new Uint8Array(0);
    const salt = crypto.getRandomValues(new Uint8Array(this.#method.saltSize));
    this.#onSalt?.(salt);
    this.#cipher = new AeadCipher(
      this.#method.algorithm!,
      deriveSessionSubkey(this.#masterKey, salt),
    );
    return concatBytes(salt, sealChunks(this.#cipher, plain, MAX_AEAD_PAYLOAD));
  }
}
