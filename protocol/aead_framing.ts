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
import { sessionSubkeyView } from "../crypto/kdf.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { type Address, decodeAddress, encodedAddressOf } from "./address.ts";
import { ChunkDecoder, type ChunkStep, MAX_AEAD_PAYLOAD, sealChunks } from "./aead_chunk.ts";
import { ProtocolError } from "./errors.ts";
import type { ReplayStore } from "./replay_filter.ts";
import { prepareWriterKey, takeWriterKey } from "./spare_writer_key.ts";
import type { FramingStep, StreamFraming } from "./stream_framing.ts";
import { concatBytes } from "../crypto/bytes.ts";

const EMPTY = new Uint8Array(0);
/** Where a client's address header and first payload are joined to be sealed as one. */
let joined = new Uint8Array(1024);

/**
 * `head` then `tail` in a buffer that the next call overwrites (sealing copies them at once):
 * a new array per session costs Deno a native backing store.
 */
function joinInScratch(head: Uint8Array, tail: Uint8Array): Uint8Array {
  const length = head.length + tail.length;
  // Grown to what a session's first write needs; a relay's writes are at most 16 KiB.
  if (length > joined.length) joined = new Uint8Array(length);
  joined.set(head);
  joined.set(tail, head.length);
  return joined.subarray(0, length);
}
/** Longest address header: ATYP + length + 255-byte name + port. */
const MAX_ADDRESS_LENGTH = 1 + 1 + 255 + 2;

/** Options of {@linkcode aeadServerFraming}. */
export interface AeadServerFramingOptions {
  /** Salts of the listener; absent: no replay check (for tests). */
  replayFilter?: ReplayStore;
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
  const inner = method.family === "none"
    ? new PlainReader()
    : new SaltedChunkReader(method, masterKey, filter, true);
  return new AeadFraming(new RequestReader(inner), new ChunkWriter(method, masterKey, filter));
}

/**
 * The client side of one connection to `target`: the first seal sends the salt and the address
 * header in front of the first payload (just the address when there is none yet).
 */
export function aeadClientFraming(
  method: MethodInfo,
  masterKey: Uint8Array,
  target: Address,
  saltPrefix?: Uint8Array,
): StreamFraming {
  const reader = method.family === "none"
    ? new PlainReader()
    : new SaltedChunkReader(method, masterKey);
  const writer = new ChunkWriter(method, masterKey, undefined, saltPrefix);
  return new AeadFraming(reader, writer, encodedAddressOf(target));
}

/**
 * The `next`/`wanted` shape shared by the readers here and `ChunkDecoder`; a reader that
 * authenticates the client also tells who it is and which salt it used, once it knows.
 *
 * The framings of one session are objects holding the listener's replay store, not closures
 * over it: a server holds one per live session (bench/throughput.ts, idle memory).
 */
interface Reader {
  readonly wanted: number;
  readonly atChunkBoundary: boolean;
  /** The client's salt, once it authenticated and passed the replay check. */
  readonly salt?: Uint8Array | undefined;
  /** The user whose key it authenticated with (multi-user listeners). */
  readonly userName?: string | undefined;
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
    return this.#writer.seal(joinInScratch(header, plain));
  }

  prepareNext(): void {
    this.#writer.prepareNext();
  }
}

/**
 * Salt, then chunks. A server's reader checks the salt against the replay store once the first
 * length block authenticated, and keeps it (`salt`) from then on.
 */
class SaltedChunkReader implements Reader {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  readonly #replay: ReplayStore | undefined;
  readonly #keepSalt: boolean;
  #chunks: ChunkDecoder | undefined;
  #salt: Uint8Array | undefined;
  #authenticated = false;

  /**
   * `replay`: the listener's salts (server side); absent on the client side and in tests.
   * `keepSalt`: the salt is kept for `salt` (a server's request carries it, for a fleet's
   * check); a client's reader has no use for it once keyed.
   */
  constructor(
    method: MethodInfo,
    masterKey: Uint8Array,
    replay?: ReplayStore,
    keepSalt = false,
  ) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#replay = replay;
    this.#keepSalt = keepSalt;
  }

  get salt(): Uint8Array | undefined {
    return this.#authenticated && this.#keepSalt ? this.#salt : undefined;
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
      // Copied only when it must outlive this call (the buffer's consumed bytes are reused).
      const salt = input.subarray(0, size);
      if (this.#keepSalt || this.#replay !== undefined) this.#salt = salt.slice();
      const subkey = sessionSubkeyView(this.#masterKey, salt);
      this.#chunks = new ChunkDecoder(new AeadCipher(this.#method.algorithm!, subkey));
      consumed = size;
    }
    const step = this.#chunks.next(input.subarray(consumed));
    if (step.consumed > 0 && !this.#authenticated) {
      // The length block authenticated: only now is the salt worth a replay check.
      this.#authenticated = true;
      if (this.#replay?.checkAndAdd(this.#salt!)) {
        this.#salt = undefined;
        throw new ProtocolError("ERR_REPLAY", "Salt seen before: replayed connection");
      }
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
  #head: Uint8Array | undefined = EMPTY;

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
      // Kept across reads. Defensive: chunks open into new arrays today, but the framing
      // contract lets a payload be a view of the reader's buffer, which the next read reuses.
      this.#head = head === step.payload ? head.slice() : head;
      return { consumed: step.consumed, payload: null };
    }
    this.#head = undefined;
    const user = this.#inner.userName;
    const salt = this.#inner.salt;
    return {
      consumed: step.consumed,
      payload: head.subarray(decoded.length),
      request: {
        address: decoded.address,
        ...(user === undefined ? {} : { user }),
        ...(salt === undefined ? {} : { salt }),
      },
    };
  }
}

/**
 * Our direction: salt in front of the first chunks, in the same buffer. A client's salt may
 * start with a fixed prefix (Outline's connection prefix, protocol/outline_prefix.ts). The salt
 * and its cipher are usually made ahead, by the session before (protocol/spare_writer_key.ts).
 */
class ChunkWriter {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  /** The listener's salts: a server records its own, so reflected traffic is refused. */
  readonly #replay: ReplayStore | undefined;
  readonly #saltPrefix: Uint8Array | undefined;
  #cipher: AeadCipher | undefined;

  constructor(
    method: MethodInfo,
    masterKey: Uint8Array,
    replay?: ReplayStore,
    saltPrefix?: Uint8Array,
  ) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#replay = replay;
    this.#saltPrefix = saltPrefix;
  }

  seal(plain: Uint8Array): Uint8Array {
    if (this.#method.family === "none") return plain.slice();
    if (this.#cipher !== undefined) return sealChunks(this.#cipher, plain, MAX_AEAD_PAYLOAD);
    if (plain.length === 0) return EMPTY;
    const { salt, cipher } = takeWriterKey(this.#method, this.#masterKey, this.#saltPrefix);
    this.#replay?.addOwn(salt);
    this.#cipher = cipher;
    // The salt goes in front of the chunks, in their buffer: one array per first flight.
    const out = sealChunks(cipher, plain, MAX_AEAD_PAYLOAD, salt.length);
    out.set(salt);
    return out;
  }

  /** Makes the salt and key of the next writer of this key (protocol/spare_writer_key.ts). */
  prepareNext(): void {
    if (this.#method.family !== "none") {
      prepareWriterKey(this.#method, this.#masterKey, this.#saltPrefix);
    }
  }
}

/** One user of a multi-user AEAD-2017 listener: a name and the key from its password. */
export interface AeadUserKey {
  readonly name: string;
  readonly masterKey: Uint8Array;
}

/**
 * Which user each client address last authenticated as, so its next connection tries that key
 * first (as Outline does): most clients are found by the first trial. Bounded; the least
 * recently used addresses are forgotten first.
 */
export class KeyHints {
  readonly #byClient = new Map<string, number>();
  readonly #capacity: number;

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  get(client: string): number | undefined {
    return this.#byClient.get(client);
  }

  set(client: string, index: number): void {
    this.#byClient.delete(client);
    this.#byClient.set(client, index);
    if (this.#byClient.size > this.#capacity) {
      this.#byClient.delete(this.#byClient.keys().next().value!);
    }
  }
}

/** The keys in trial order: the client's last one first, then the rest in config order. */
export function trialOrder(count: number, hinted: number | undefined): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  if (hinted !== undefined && hinted > 0 && hinted < count) {
    order.splice(hinted, 1);
    order.unshift(hinted);
  }
  return order;
}

/**
 * The server side of one connection to a multi-user AEAD-2017 listener: the first length block
 * is tried with each user's key (trial decryption, the client's last key first) and the one it
 * opens with serves the connection both ways. A first flight no key opens is `ERR_CIPHER`, like
 * any probe; the replay check runs after authentication, as with one key.
 */
export function aeadMultiUserServerFraming(
  method: MethodInfo,
  users: readonly AeadUserKey[],
  options: AeadServerFramingOptions & { client?: string; hints?: KeyHints } = {},
): StreamFraming {
  const filter = options.replayFilter;
  const trial = new TrialChunkReader(method, users, {
    ...(filter === undefined ? {} : { replay: filter }),
    ...(options.client === undefined ? {} : { client: options.client }),
    ...(options.hints === undefined ? {} : { hints: options.hints }),
  });
  return new AeadFraming(new RequestReader(trial), new DeferredWriter(method, trial, filter));
}

/** Salt, then the first length block tried with each key; then chunks with the one that fit. */
class TrialChunkReader implements Reader {
  readonly #method: MethodInfo;
  readonly #users: readonly AeadUserKey[];
  readonly #replay: ReplayStore | undefined;
  readonly #client: string | undefined;
  readonly #hints: KeyHints | undefined;
  #chunks: ChunkDecoder | undefined;
  user: AeadUserKey | undefined;
  /** The client's salt, once a key opened the request and the replay check passed. */
  salt: Uint8Array | undefined;

  constructor(
    method: MethodInfo,
    users: readonly AeadUserKey[],
    options: { replay?: ReplayStore; client?: string; hints?: KeyHints },
  ) {
    this.#method = method;
    this.#users = users;
    this.#replay = options.replay;
    this.#client = options.client;
    this.#hints = options.hints;
  }

  get userName(): string | undefined {
    return this.user?.name;
  }

  get wanted(): number {
    return this.#chunks?.wanted ?? this.#method.saltSize + 2 + this.#method.tagSize;
  }

  get atChunkBoundary(): boolean {
    return this.#chunks !== undefined && this.#chunks.atChunkBoundary;
  }

  next(input: Uint8Array): ChunkStep {
    if (this.#chunks !== undefined) return this.#chunks.next(input);
    const saltSize = this.#method.saltSize;
    if (input.length < saltSize + 2 + this.#method.tagSize) return { consumed: 0, payload: null };
    const salt = input.subarray(0, saltSize);
    const rest = input.subarray(saltSize);
    const hinted = this.#client === undefined ? undefined : this.#hints?.get(this.#client);
    for (const index of trialOrder(this.#users.length, hinted)) {
      const user = this.#users[index]!;
      const decoder = new ChunkDecoder(
        new AeadCipher(this.#method.algorithm!, sessionSubkeyView(user.masterKey, salt)),
      );
      let step: ChunkStep;
      try {
        step = decoder.next(rest);
      } catch (error) {
        if (error instanceof ProtocolError && error.code === "ERR_CIPHER") continue;
        throw error;
      }
      const copy = salt.slice();
      if (this.#replay?.checkAndAdd(copy)) {
        throw new ProtocolError("ERR_REPLAY", "Salt seen before: replayed connection");
      }
      this.salt = copy;
      this.#chunks = decoder;
      this.user = user;
      if (this.#client !== undefined) this.#hints?.set(this.#client, index);
      return { consumed: saltSize + step.consumed, payload: step.payload };
    }
    throw new ProtocolError("ERR_CIPHER", "Authentication failed: no user's key opens the request");
  }
}

/** The server's direction of a multi-user connection: sealed with the key the client used. */
class DeferredWriter extends ChunkWriter {
  readonly #trial: TrialChunkReader;
  #inner: ChunkWriter | undefined;
  readonly #method: MethodInfo;
  readonly #replay: ReplayStore | undefined;

  constructor(method: MethodInfo, trial: TrialChunkReader, replay: ReplayStore | undefined) {
    super(method, EMPTY);
    this.#trial = trial;
    this.#method = method;
    this.#replay = replay;
  }

  override seal(plain: Uint8Array): Uint8Array {
    const user = this.#trial.user;
    if (user === undefined) throw new Error("Cannot answer before the request header");
    this.#inner ??= new ChunkWriter(this.#method, user.masterKey, this.#replay);
    return this.#inner.seal(plain);
  }

  override prepareNext(): void {
    this.#inner?.prepareNext();
  }
}
