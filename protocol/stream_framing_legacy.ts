/**
 * The legacy stream-cipher protocol (NOTES §5) behind the {@linkcode StreamFraming} seam. Each
 * direction is the sender's random IV, then the whole direction encrypted as one keystream (not
 * restarted per write); the client's plaintext starts with the target address:
 *
 * ```
 * +-----------+---------------------------------------------------+
 * | IV        | encrypt(ATYP addr port ‖ payload ‖ payload ...)   |   client → server
 * +-----------+---------------------------------------------------+
 * | IV        | encrypt(payload ‖ payload ...)                    |   server → client
 * +-----------+---------------------------------------------------+
 *   ivSize bytes (method.saltSize): 16, 12 or 8; none for `table`
 * ```
 *
 * Nothing authenticates: a wrong key or a probe decrypts to junk. The server's only check is the
 * address header, so a header that does not parse ends as `ERR_CIPHER`, like an AEAD first flight
 * that does not open, and the server drains it silently (server.ts). Once a header parses, the
 * client's IV is checked against the listener's replay filter (`ERR_REPLAY` for one seen before,
 * as libev keeps one) and recorded; the server's own IVs are recorded too. `table` has no IV and
 * so no replay check.
 * @module
 */
import { concatBytes } from "../crypto/bytes.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { createStreamCipher, type StreamPrimitive } from "../crypto/stream_cipher.ts";
import { type Address, decodeAddress, encodeAddress } from "./address.ts";
import { ProtocolError } from "./errors.ts";
import { fillPrefixedSalt } from "./outline_prefix.ts";
import type { ReplayStore } from "./replay_filter.ts";
import type { FramingStep, StreamFraming } from "./stream_framing.ts";

/** Longest address header: ATYP + length + 255-byte name + port. */
const MAX_ADDRESS_LENGTH = 1 + 1 + 255 + 2;
const EMPTY = new Uint8Array(0);

/** Options of {@linkcode streamServerFraming}. */
export interface StreamServerFramingOptions {
  /** IVs of the listener; absent: no replay check (for tests). */
  replayFilter?: ReplayStore;
}

/**
 * The server side of one connection: reads the client's IV and address header, and encrypts the
 * answer under an IV of its own. `masterKey` comes from `deriveMasterKey(method, password)`
 * (crypto/kdf.ts).
 */
export function streamServerFraming(
  method: MethodInfo,
  masterKey: Uint8Array,
  options: StreamServerFramingOptions = {},
): StreamFraming {
  const filter = method.saltSize > 0 ? options.replayFilter : undefined;
  return new LegacyStreamFraming(
    new IvReader(method, masterKey),
    new IvWriter(method, masterKey, (iv) => filter?.addOwn(iv)),
    { filter },
  );
}

/**
 * The client side of one connection to `target`: the first seal sends the IV (which may start
 * with `ivPrefix`, Outline's connection prefix) and the address header in front of the payload.
 */
export function streamClientFraming(
  method: MethodInfo,
  masterKey: Uint8Array,
  target: Address,
  ivPrefix?: Uint8Array,
): StreamFraming {
  return new LegacyStreamFraming(
    new IvReader(method, masterKey),
    new IvWriter(method, masterKey, undefined, ivPrefix),
    { header: encodeAddress(target) },
  );
}

/** The peer's direction: the IV, then everything after it decrypted as it comes. */
class IvReader {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  #cipher: StreamPrimitive | undefined;
  iv: Uint8Array | undefined;

  constructor(method: MethodInfo, masterKey: Uint8Array) {
    this.#method = method;
    this.#masterKey = masterKey;
  }

  get started(): boolean {
    return this.#cipher !== undefined;
  }

  get wanted(): number {
    return this.#cipher === undefined ? Math.max(1, this.#method.saltSize) : 1;
  }

  /** Consumes the IV (once) and then all of `input`; the payload may be empty. */
  next(input: Uint8Array): { consumed: number; payload: Uint8Array | null } {
    let consumed = 0;
    if (this.#cipher === undefined) {
      const size = this.#method.saltSize;
      if (input.length < size) return { consumed: 0, payload: null };
      this.iv = input.slice(0, size);
      this.#cipher = createStreamCipher(this.#method.stream!, this.#masterKey, this.iv, {
        decrypt: true,
      });
      consumed = size;
    }
    const rest = input.subarray(consumed);
    if (rest.length === 0) return { consumed, payload: null };
    const payload = new Uint8Array(rest.length);
    this.#cipher.updateInto(rest, payload);
    return { consumed: input.length, payload };
  }
}

/** Our direction: a fresh IV in front of the first bytes, one keystream after it. */
class IvWriter {
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  readonly #onIv: ((iv: Uint8Array) => void) | undefined;
  readonly #ivPrefix: Uint8Array | undefined;
  #cipher: StreamPrimitive | undefined;

  constructor(
    method: MethodInfo,
    masterKey: Uint8Array,
    onIv?: (iv: Uint8Array) => void,
    ivPrefix?: Uint8Array,
  ) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#onIv = onIv;
    this.#ivPrefix = ivPrefix;
  }

  seal(plain: Uint8Array): Uint8Array {
    if (plain.length === 0) return EMPTY;
    let at = 0;
    let out: Uint8Array;
    if (this.#cipher === undefined) {
      at = this.#method.saltSize;
      out = new Uint8Array(at + plain.length);
      const iv = fillPrefixedSalt(out.subarray(0, at), this.#ivPrefix);
      this.#onIv?.(iv);
      this.#cipher = createStreamCipher(this.#method.stream!, this.#masterKey, iv.slice());
    } else {
      out = new Uint8Array(plain.length);
    }
    this.#cipher.updateInto(plain, out.subarray(at));
    return out;
  }
}

/** Reader and writer as one framing; the server side also peels off the address header. */
class LegacyStreamFraming implements StreamFraming {
  readonly #reader: IvReader;
  readonly #writer: IvWriter;
  /** Client: the address header, sent in front of the first payload. */
  #header: Uint8Array | undefined;
  /** Server: the decrypted bytes of an address header still incomplete; undefined once read. */
  #head: Uint8Array | undefined;
  readonly #filter: ReplayStore | undefined;

  constructor(
    reader: IvReader,
    writer: IvWriter,
    options: { header?: Uint8Array; filter?: ReplayStore | undefined },
  ) {
    this.#reader = reader;
    this.#writer = writer;
    this.#header = options.header;
    this.#filter = options.filter;
    // A client reads no header; a server reads one first.
    this.#head = options.header === undefined ? EMPTY : undefined;
  }

  get wanted(): number {
    return this.#reader.wanted;
  }

  /** Any byte boundary is clean once the IV (and, on the server, the header) is in. */
  get atChunkBoundary(): boolean {
    return this.#reader.started && this.#head === undefined;
  }

  open(input: Uint8Array): FramingStep {
    const step = this.#reader.next(input);
    if (this.#head === undefined || step.payload === null) return step;
    const head = this.#head.length === 0 ? step.payload : concatBytes(this.#head, step.payload);
    let decoded;
    try {
      decoded = decodeAddress(head);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // Without a tag, a header that does not parse is the sign of a wrong key or a probe.
      throw new ProtocolError("ERR_CIPHER", `Bad address header: ${error.message}`, {
        cause: error,
      });
    }
    if (decoded === undefined) {
      if (head.length >= MAX_ADDRESS_LENGTH) {
        throw new ProtocolError("ERR_CIPHER", "Bad address header: too long");
      }
      this.#head = head;
      return { consumed: step.consumed, payload: null };
    }
    this.#head = undefined;
    if (this.#filter?.checkAndAdd(this.#reader.iv!)) {
      throw new ProtocolError("ERR_REPLAY", "IV seen before: replayed connection");
    }
    return {
      consumed: step.consumed,
      payload: head.subarray(decoded.length),
      request: {
        address: decoded.address,
        ...(this.#reader.iv?.length ? { salt: this.#reader.iv.slice() } : {}),
      },
    };
  }

  seal(plain: Uint8Array): Uint8Array {
    const header = this.#header;
    if (header === undefined) return this.#writer.seal(plain);
    this.#header = undefined;
    return this.#writer.seal(concatBytes(header, plain));
  }
}
