/**
 * Shadowsocks 2022 TCP (SIP022, with SIP023 identity headers). Each direction starts with a
 * random salt; the session subkey is `derive_key("shadowsocks 2022 session subkey", PSK || salt)`
 * and the AEAD nonce is the AEAD-2017 little-endian counter (0, 1, 2, ... per seal/open).
 *
 * Request (client → server), all of it up to the variable header sent in ONE write:
 *
 * ```
 * +-----------+-----------------+---------------------------+----------------------------------+
 * | salt      | EIH × n         | AEAD(fixed header) + tag  | AEAD(variable header) + tag      | chunks...
 * | 16 | 32   | 16 each (SIP023)| 11 + 16, nonce 0          | length + 16, nonce 1             | (0xFFFF max)
 * +-----------+-----------------+---------------------------+----------------------------------+
 *
 * fixed header (11 bytes)             variable header (length bytes)
 * +------+---------------+--------+   +----------------+----------------+---------+-----------------+
 * | type | timestamp     | length |   | ATYP addr port | padding length | padding | initial payload |
 * | 1: 0 | 8, u64 BE (s) | 2, BE  |   | SOCKS address  | 2, u16 BE      | 0..900  | rest of chunk   |
 * +------+---------------+--------+   +----------------+----------------+---------+-----------------+
 * ```
 *
 * Response (server → client):
 *
 * ```
 * +-----------+------------------------------------------------+-------------------------+
 * | salt      | AEAD(response header) + tag, nonce 0           | AEAD(payload) + tag     | chunks...
 * | 16 | 32   | 1 + 8 + salt + 2 + 16                          | length + 16, nonce 1    |
 * +-----------+------------------------------------------------+-------------------------+
 *
 * response header (27 or 43 bytes)
 * +------+---------------+---------------------+--------+
 * | type | timestamp     | request salt        | length |
 * | 1: 1 | 8, u64 BE (s) | 16 | 32             | 2, BE  |
 * +------+---------------+---------------------+--------+
 * ```
 *
 * After the headers both directions are AEAD-2017 chunks (protocol/aead_chunk.ts) with a
 * 0xFFFF payload cap. Rules enforced here: a request carries payload or padding (padding
 * 1..900 when there is no payload); address and padding must fit in the variable-header chunk;
 * padding is at most 900; timestamps within ±30 s; a salt is accepted once in 61 s, checked only
 * after the fixed header authenticated (NOTES §7.4); a response echoes the request salt.
 *
 * Status codes: a bad tag, unknown user or wrong header type → `ERR_CIPHER`; timestamp out of
 * range, replayed salt, full salt pool or a response to another request → `ERR_REPLAY`; a
 * malformed variable header (address, padding) → `ERR_READ_ADDRESS`.
 *
 * Pure code: no sockets. Decoders return "need more" (`undefined`, or a step with a null
 * payload) on a strict prefix and never guess.
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { sessionSubkey2022View } from "../crypto/kdf2022.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { type Address, decodeAddress, encodedAddressLength, encodedAddressOf } from "./address.ts";
import { ChunkDecoder, type ChunkStep, sealChunksInto, sealedLength } from "./aead_chunk.ts";
import {
  type ClientKeys2022,
  EIH_SIZE,
  identityHeadersLength,
  openTcpIdentityHeader,
  requireUser,
  sealTcpIdentityHeaders,
  type ServerKeys2022,
  type User2022,
} from "./aead2022_identity.ts";
import { checkTimestamp, unixSeconds } from "./aead2022_time.ts";
import { ProtocolError } from "./errors.ts";
import type { SaltStore } from "./salt_pool.ts";
import { equalBytes } from "../crypto/bytes.ts";
import type { WriterKey } from "./spare_writer_key.ts";

/** Header type of client-to-server streams and packets. */
export const HEADER_TYPE_CLIENT = 0;
/** Header type of server-to-client streams and packets. */
export const HEADER_TYPE_SERVER = 1;
/** Largest padding a header may carry. */
export const MAX_PADDING_LENGTH = 900;
/** Largest payload of one 2022 chunk (the AEAD-2017 0x3FFF cap does not apply). */
export const MAX_CHUNK_PAYLOAD_2022 = 0xffff;
/** Plaintext bytes of the request fixed header. */
export const REQUEST_FIXED_HEADER_LENGTH = 11;

const TAG_SIZE = 16;
const PADDING_LENGTH_SIZE = 2;

// ---------------------------------------------------------------------------------------------
// Codecs

/** The request fixed header (its type byte is always 0). */
export interface RequestFixedHeader {
  /** Unix time in seconds. */
  readonly timestamp: number;
  /** Plaintext length of the variable header chunk that follows. */
  readonly length: number;
}

/** Encodes the 11-byte request fixed header. */
export function encodeRequestFixedHeader(header: RequestFixedHeader): Uint8Array {
  return writeRequestFixedHeader(header, new Uint8Array(REQUEST_FIXED_HEADER_LENGTH));
}

/** Writes the request fixed header to the start of `out` (11 bytes); returns `out`. */
function writeRequestFixedHeader(header: RequestFixedHeader, out: Uint8Array): Uint8Array {
  checkU16("variable header length", header.length);
  out[0] = HEADER_TYPE_CLIENT;
  writeU64(out, 1, header.timestamp);
  out[9] = header.length >> 8;
  out[10] = header.length & 0xff;
  return out;
}

/**
 * Decodes a request fixed header from the front of `bytes`: `undefined` when shorter than 11
 * bytes; `ProtocolError("ERR_CIPHER")` when the type is not 0.
 */
export function decodeRequestFixedHeader(bytes: Uint8Array): RequestFixedHeader | undefined {
  if (bytes.length < REQUEST_FIXED_HEADER_LENGTH) return undefined;
  checkType(bytes[0]!, HEADER_TYPE_CLIENT);
  return { timestamp: readU64(bytes, 1), length: (bytes[9]! << 8) | bytes[10]! };
}

/** The request variable header. */
export interface RequestVariableHeader {
  readonly address: Address;
  /** Bytes of padding (their content carries no meaning). */
  readonly paddingLength: number;
  /** The initial payload, possibly empty when there is padding. */
  readonly payload: Uint8Array;
}

/** Bytes `encodeRequestVariableHeader(header)` produces. */
export function requestVariableHeaderLength(header: RequestVariableHeader): number {
  return encodedAddressLength(header.address) + PADDING_LENGTH_SIZE + header.paddingLength +
    header.payload.length;
}

/**
 * Encodes a variable header with random padding. Throws `RangeError` for padding outside
 * 0..900, for neither payload nor padding (servers must reject that), or for more than 65535
 * bytes in all.
 */
export function encodeRequestVariableHeader(header: RequestVariableHeader): Uint8Array {
  const out = new Uint8Array(checkedVariableHeaderLength(header));
  writeRequestVariableHeader(header, out);
  return out;
}

/** `requestVariableHeaderLength`, after the checks `encodeRequestVariableHeader` documents. */
function checkedVariableHeaderLength(header: RequestVariableHeader): number {
  checkPaddingLength(header.paddingLength);
  if (header.payload.length === 0 && header.paddingLength === 0) {
    throw new RangeError("Invalid request header: it needs an initial payload, padding, or both");
  }
  const length = requestVariableHeaderLength(header);
  if (length > MAX_CHUNK_PAYLOAD_2022) {
    throw new RangeError(
      `Invalid request header: expected at most ${MAX_CHUNK_PAYLOAD_2022} bytes, got ${length}`,
    );
  }
  return length;
}

/** Writes a checked variable header (random padding included) to the start of `out`. */
function writeRequestVariableHeader(header: RequestVariableHeader, out: Uint8Array): void {
  const address = encodedAddressOf(header.address);
  out.set(address, 0);
  let at = address.length;
  out[at] = header.paddingLength >> 8;
  out[at + 1] = header.paddingLength & 0xff;
  at += PADDING_LENGTH_SIZE;
  crypto.getRandomValues(out.subarray(at, at + header.paddingLength));
  at += header.paddingLength;
  out.set(header.payload, at);
}

/**
 * Decodes a whole variable-header chunk. The chunk's length was authenticated in the fixed
 * header, so a short chunk is an error here, not "need more": the address or padding running
 * past its end, padding over 900, or neither payload nor padding all throw
 * `ProtocolError("ERR_READ_ADDRESS")` (an unknown address type too).
 */
export function decodeRequestVariableHeader(chunk: Uint8Array): RequestVariableHeader {
  const decoded = decodeAddress(chunk);
  if (decoded === undefined) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `Address runs past the end of the request header: header is ${chunk.length} bytes`,
    );
  }
  let at = decoded.length;
  if (chunk.length < at + PADDING_LENGTH_SIZE) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `Request header too short: expected at least ${
        at + PADDING_LENGTH_SIZE
      }, got ${chunk.length}`,
    );
  }
  const paddingLength = (chunk[at]! << 8) | chunk[at + 1]!;
  at += PADDING_LENGTH_SIZE;
  if (paddingLength > MAX_PADDING_LENGTH) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `Padding too long: expected at most ${MAX_PADDING_LENGTH}, got ${paddingLength}`,
    );
  }
  if (chunk.length < at + paddingLength) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `Padding runs past the end of the request header: expected at least ${
        at + paddingLength
      }, got ${chunk.length}`,
    );
  }
  at += paddingLength;
  const payload = chunk.subarray(at);
  if (payload.length === 0 && paddingLength === 0) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      "Request header has neither initial payload nor padding",
    );
  }
  return { address: decoded.address, paddingLength, payload };
}

/** The response fixed header (its type byte is always 1). */
export interface ResponseHeader {
  /** Unix time in seconds. */
  readonly timestamp: number;
  /** The salt of the request this answers. */
  readonly requestSalt: Uint8Array;
  /** Plaintext length of the first payload chunk that follows. */
  readonly length: number;
}

/** Bytes of a response header for a method with `saltSize`-byte salts (27 or 43). */
export function responseHeaderLength(saltSize: number): number {
  return 1 + 8 + saltSize + 2;
}

/** Encodes a response header. */
export function encodeResponseHeader(header: ResponseHeader): Uint8Array {
  const out = new Uint8Array(responseHeaderLength(header.requestSalt.length));
  writeResponseHeader(header, out);
  return out;
}

/** Writes a response header to the start of `out`. */
function writeResponseHeader(header: ResponseHeader, out: Uint8Array): void {
  checkU16("first payload length", header.length);
  const saltSize = header.requestSalt.length;
  out[0] = HEADER_TYPE_SERVER;
  writeU64(out, 1, header.timestamp);
  out.set(header.requestSalt, 9);
  out[9 + saltSize] = header.length >> 8;
  out[10 + saltSize] = header.length & 0xff;
}

/**
 * Decodes a response header from the front of `bytes`: `undefined` when shorter than
 * `responseHeaderLength(saltSize)`; `ProtocolError("ERR_CIPHER")` when the type is not 1. Its
 * `requestSalt` is a view of `bytes`.
 */
export function decodeResponseHeader(
  bytes: Uint8Array,
  saltSize: number,
): ResponseHeader | undefined {
  if (bytes.length < responseHeaderLength(saltSize)) return undefined;
  checkType(bytes[0]!, HEADER_TYPE_SERVER);
  return {
    timestamp: readU64(bytes, 1),
    requestSalt: bytes.subarray(9, 9 + saltSize),
    length: (bytes[9 + saltSize]! << 8) | bytes[10 + saltSize]!,
  };
}

// ---------------------------------------------------------------------------------------------
// Ciphers and sizes

/** One direction's cipher: BLAKE3 session subkey from `psk || salt`, nonce counter at 0. */
export function createTcpCipher2022(
  method: MethodInfo,
  psk: Uint8Array,
  salt: Uint8Array,
): AeadCipher {
  if (method.family !== "aead2022" || method.algorithm === undefined) {
    throw new RangeError(`Method ${method.name} is not a 2022 method`);
  }
  return new AeadCipher(method.algorithm, sessionSubkey2022View(psk, salt, method.keySize));
}

/**
 * The server's fixed first read: salt + (one EIH with users) + sealed fixed header
 * (e.g. 16 + 11 + 16 = 43 for AES-128 single-user, 32 + 16 + 11 + 16 = 75 for AES-256 with users).
 */
export function requestFixedReadLength(keys: ServerKeys2022): number {
  return keys.method.saltSize + (keys.users === undefined ? 0 : EIH_SIZE) +
    REQUEST_FIXED_HEADER_LENGTH + TAG_SIZE;
}

// ---------------------------------------------------------------------------------------------
// Client: request out, response in

/** Options of {@linkcode sealRequest}. */
export interface SealRequestOptions {
  /** Initial payload (the app's first bytes). Default: none, and then random padding. */
  payload?: Uint8Array;
  /** Padding length 0..900. Default: 0 with a payload, random 1..900 without. */
  paddingLength?: number;
  /** The request salt. Default: random. For tests. */
  salt?: Uint8Array;
  /**
   * The salt and the cipher keyed from it with the user's PSK, made ahead
   * (protocol/spare_writer_key.ts). Default: made here (from `salt`, when given).
   */
  writerKey?: WriterKey;
  /** Wall clock in milliseconds. Default: `Date.now`. */
  now?: () => number;
}

/** A sealed first flight and the state to continue the stream with. */
export interface SealedRequest {
  /** salt + EIHs + fixed header + variable header (+ chunks for payload that did not fit). */
  readonly bytes: Uint8Array;
  /**
   * The request salt: the response must echo it. The same array as `response.requestSalt`
   * (one copy, apart from `bytes`): read it, never change it.
   */
  readonly salt: Uint8Array;
  /** The client's sealing cipher: later data goes through `sealChunks(cipher, data, 0xFFFF)`. */
  readonly cipher: AeadCipher;
  /** What the client needs to open the response. */
  readonly response: ResponseContext;
}

/**
 * Builds the client's whole first flight as one buffer, to be written with one write call.
 * Payload beyond what fits in the variable header (65535 bytes in all) follows as chunks in the
 * same buffer.
 */
export function sealRequest(
  keys: ClientKeys2022,
  address: Address,
  options: SealRequestOptions = {},
): SealedRequest {
  const { method } = keys;
  const payload = options.payload ?? new Uint8Array(0);
  const paddingLength = options.paddingLength ??
    (payload.length > 0 ? 0 : 1 + randomBelow(MAX_PADDING_LENGTH));
  const made = options.writerKey;
  const givenSalt = checkedGivenSalt(method.saltSize, options);
  // Encoded (and checked) first, as before: a bad address fails before anything is derived.
  const room = MAX_CHUNK_PAYLOAD_2022 - encodedAddressOf(address).length - PADDING_LENGTH_SIZE -
    paddingLength;
  const inHeader = payload.subarray(0, Math.max(0, room));
  const rest = payload.subarray(inHeader.length);
  const variableHeader = { address, paddingLength, payload: inHeader };
  const variableLength = checkedVariableHeaderLength(variableHeader);
  const timestamp = unixSeconds((options.now ?? Date.now)());
  const fixed = writeRequestFixedHeader({ timestamp, length: variableLength }, FIXED_HEADER);

  // Salt, EIHs, fixed header, variable header and the rest as chunks, sealed into one buffer:
  // each part of its own would cost Deno a native backing store.
  const saltSize = method.saltSize;
  const eihLength = identityHeadersLength(keys);
  const out = new Uint8Array(
    saltSize + eihLength + REQUEST_FIXED_HEADER_LENGTH + TAG_SIZE + variableLength + TAG_SIZE +
      sealedLength(rest.length, TAG_SIZE, MAX_CHUNK_PAYLOAD_2022),
  );
  const salt = writeSalt(out, saltSize, givenSalt);
  if (eihLength > 0) out.set(sealTcpIdentityHeaders(keys, salt), saltSize);
  const cipher = made?.cipher ?? createTcpCipher2022(method, keys.userPsk, salt);
  let at = saltSize + eihLength;
  at += cipher.sealInto(fixed, out.subarray(at));
  const variable = variableScratch(variableLength);
  writeRequestVariableHeader(variableHeader, variable);
  at += cipher.sealInto(variable, out.subarray(at));
  variable.fill(0); // the first payload is not kept in the scratch
  sealChunksInto(cipher, rest, MAX_CHUNK_PAYLOAD_2022, out, at);
  // One copy for both: neither the caller nor the response decoder changes it (a made key's
  // salt is one already).
  const saltCopy = made?.salt ?? out.slice(0, saltSize);
  return {
    bytes: out,
    salt: saltCopy,
    cipher,
    response: { method, psk: keys.userPsk, requestSalt: saltCopy },
  };
}

/** Where a request's fixed header is written before it is sealed. */
const FIXED_HEADER = new Uint8Array(REQUEST_FIXED_HEADER_LENGTH);
/** Where a request's variable header is written before it is sealed (grown to what one needs). */
let variableHeaderScratch = new Uint8Array(1024);

function variableScratch(length: number): Uint8Array {
  if (length > variableHeaderScratch.length) variableHeaderScratch = new Uint8Array(length);
  return variableHeaderScratch.subarray(0, length);
}

/** Who a response belongs to: the method, the PSK of the session and the request salt. */
export interface ResponseContext {
  readonly method: MethodInfo;
  readonly psk: Uint8Array;
  readonly requestSalt: Uint8Array;
}

/** The response header, opened and checked. */
export interface OpenedResponseHeader {
  /** The server's salt. */
  readonly salt: Uint8Array;
  /** The client's opening cipher, at nonce 1: the first payload chunk is next. */
  readonly cipher: AeadCipher;
  /** Plaintext length of the first payload chunk. */
  readonly length: number;
  readonly timestamp: number;
  /** Server time minus local time, in seconds. */
  readonly skew: number;
}

/** Bytes the client needs before it can open the response header (salt + header + tag). */
export function responseFixedReadLength(method: MethodInfo): number {
  return method.saltSize + responseHeaderLength(method.saltSize) + TAG_SIZE;
}

/**
 * Client side: opens the response salt and header from the front of `bytes`. `undefined` when
 * shorter than `responseFixedReadLength`; throws `ProtocolError` for a bad tag or type
 * (`ERR_CIPHER`), a timestamp out of range or another request's salt (`ERR_REPLAY`).
 */
export function openResponseHeader(
  context: ResponseContext,
  bytes: Uint8Array,
  options: { now?: () => number } = {},
): OpenedResponseHeader | undefined {
  const { method } = context;
  if (bytes.length < responseFixedReadLength(method)) return undefined;
  const salt = bytes.slice(0, method.saltSize);
  const cipher = createTcpCipher2022(method, context.psk, salt);
  const sealed = bytes.subarray(method.saltSize, responseFixedReadLength(method));
  const headerLength = cipher.openInto(sealed, OPENED_HEADER);
  const header = decodeResponseHeader(OPENED_HEADER.subarray(0, headerLength), method.saltSize)!;
  const skew = checkTimestamp(header.timestamp, (options.now ?? Date.now)());
  if (!equalBytes(header.requestSalt, context.requestSalt)) {
    throw new ProtocolError("ERR_REPLAY", "Response answers another request: salt mismatch");
  }
  return { salt, cipher, length: header.length, timestamp: header.timestamp, skew };
}

/** One step of a 2022 stream decoder; `payload` null means "need more input". */
export interface ResponseStep extends ChunkStep {
  /** Set on the step that opened the response header. */
  readonly header?: OpenedResponseHeader;
}

/**
 * Client side: the server-to-client stream as payloads, with the same `next`/`wanted` shape as
 * `ChunkDecoder`: response salt and header, the first payload chunk (whose length the header
 * gave), then ordinary chunks. After a throw the decoder must not be used again.
 */
export class ResponseDecoder {
  readonly #context: ResponseContext;
  readonly #now: () => number;
  #header: OpenedResponseHeader | undefined;
  #chunks: ChunkDecoder | undefined;

  constructor(context: ResponseContext, options: { now?: () => number } = {}) {
    this.#context = context;
    this.#now = options.now ?? Date.now;
  }

  /** Bytes needed before the next step can make progress. */
  get wanted(): number {
    if (this.#header === undefined) return responseFixedReadLength(this.#context.method);
    if (this.#chunks === undefined) return this.#header.length + TAG_SIZE;
    return this.#chunks.wanted;
  }

  /** True where the stream may end cleanly (after the first payload, between chunks). */
  get atChunkBoundary(): boolean {
    return this.#chunks !== undefined && this.#chunks.atChunkBoundary;
  }

  /** Decodes from the front of `input`; see `ChunkDecoder.next`. */
  next(input: Uint8Array): ResponseStep {
    if (this.#chunks !== undefined) return this.#chunks.next(input);
    let consumed = 0;
    let opened: OpenedResponseHeader | undefined;
    if (this.#header === undefined) {
      opened = openResponseHeader(this.#context, input, { now: this.#now });
      if (opened === undefined) return { consumed: 0, payload: null };
      this.#header = opened;
      consumed = responseFixedReadLength(this.#context.method);
    }
    const header = this.#header;
    const end = consumed + header.length + TAG_SIZE;
    let step: ResponseStep;
    if (input.length < end) {
      step = { consumed, payload: null };
    } else {
      step = { consumed: end, payload: header.cipher.open(input.subarray(consumed, end)) };
      this.#chunks = new ChunkDecoder(header.cipher, MAX_CHUNK_PAYLOAD_2022);
    }
    return opened === undefined ? step : { ...step, header: opened };
  }
}

// ---------------------------------------------------------------------------------------------
// Server: request in, response out

/** Options of the server-side request steps. */
export interface OpenRequestOptions {
  /** Salts seen in the last 61 s; the request salt is added once its header authenticates. */
  readonly saltPool: SaltStore;
  /** Wall clock in milliseconds. Default: `Date.now`. */
  readonly now?: () => number;
}

/** The request fixed header, opened and checked (NOTES §7.4 steps 1–4). */
export interface OpenedFixedHeader {
  readonly salt: Uint8Array;
  /** The user the EIH named (multi-user servers only). */
  readonly user?: User2022;
  /** The PSK of this session: the user's, or the server's without users. */
  readonly psk: Uint8Array;
  /** The server's opening cipher, at nonce 1: the variable header is next. */
  readonly cipher: AeadCipher;
  /** Plaintext length of the variable header chunk. */
  readonly variableHeaderLength: number;
  readonly timestamp: number;
  /** Client time minus local time, in seconds: log it when large. */
  readonly skew: number;
}

/**
 * Steps 1–4 of NOTES §7.4 on the server's fixed first read (`requestFixedReadLength(keys)`
 * bytes): EIH → user, derive subkey, open the fixed header, check type and timestamp, and only
 * then check and store the salt. `undefined` when `bytes` is shorter than the fixed read.
 */
export function openRequestFixedHeader(
  keys: ServerKeys2022,
  bytes: Uint8Array,
  options: OpenRequestOptions,
): OpenedFixedHeader | undefined {
  const { method } = keys;
  const fixedRead = requestFixedReadLength(keys);
  if (bytes.length < fixedRead) return undefined;
  const salt = bytes.slice(0, method.saltSize);
  let at = method.saltSize;
  let user: User2022 | undefined;
  if (keys.users !== undefined) {
    const eih = bytes.subarray(at, at + EIH_SIZE);
    user = requireUser(keys.users, openTcpIdentityHeader(keys.psk, salt, eih, method.keySize));
    at += EIH_SIZE;
  }
  const psk = user?.psk ?? keys.psk;
  const cipher = createTcpCipher2022(method, psk, salt);
  const headerLength = cipher.openInto(bytes.subarray(at, fixedRead), OPENED_HEADER);
  const header = decodeRequestFixedHeader(OPENED_HEADER.subarray(0, headerLength))!;
  const skew = checkTimestamp(header.timestamp, (options.now ?? Date.now)());
  const verdict = options.saltPool.checkAndAdd(salt);
  if (verdict === "duplicate") {
    throw new ProtocolError("ERR_REPLAY", "Replayed request: salt seen in the last 61 s");
  }
  if (verdict === "full") {
    throw new ProtocolError(
      "ERR_REPLAY",
      `Salt pool full: ${options.saltPool.capacity} salts held, refusing new sessions`,
    );
  }
  const opened = {
    salt,
    psk,
    cipher,
    variableHeaderLength: header.length,
    timestamp: header.timestamp,
    skew,
  };
  return user === undefined ? opened : { ...opened, user };
}

/**
 * Step 5: opens and validates the variable header chunk from the front of `bytes`
 * (`fixed.variableHeaderLength + 16` bytes). `undefined` when `bytes` is shorter.
 */
export function openRequestVariableHeader(
  fixed: OpenedFixedHeader,
  bytes: Uint8Array,
): RequestVariableHeader | undefined {
  const sealedLength = fixed.variableHeaderLength + TAG_SIZE;
  if (bytes.length < sealedLength) return undefined;
  return decodeRequestVariableHeader(fixed.cipher.open(bytes.subarray(0, sealedLength)));
}

/** A request as the server acts on it. */
export interface Request2022 extends ResponseContext {
  readonly user?: User2022;
  readonly address: Address;
  readonly paddingLength: number;
  readonly timestamp: number;
  /** Client time minus local time, in seconds. */
  readonly skew: number;
}

/** One step of the server's request decoder. */
export interface RequestStep extends ChunkStep {
  /** Set on the step that completed the request headers (its payload is the initial payload). */
  readonly request?: Request2022;
}

/**
 * Server side: the client-to-server stream as payloads, with the same `next`/`wanted` shape as
 * `ChunkDecoder`. The first step that returns a payload also returns the `request` (target,
 * user, salt); its payload is the initial payload and may be empty. The order of checks is
 * NOTES §7.4. `wanted` is the fixed first read at the start. After a throw the decoder must not
 * be used again.
 */
export class RequestDecoder {
  readonly #keys: ServerKeys2022;
  readonly #options: OpenRequestOptions;
  #fixed: OpenedFixedHeader | undefined;
  #request: Request2022 | undefined;
  #chunks: ChunkDecoder | undefined;

  constructor(keys: ServerKeys2022, options: OpenRequestOptions) {
    this.#keys = keys;
    this.#options = options;
  }

  /** The request once its headers are open. */
  get request(): Request2022 | undefined {
    return this.#request;
  }

  /** Bytes needed before the next step can make progress. */
  get wanted(): number {
    if (this.#fixed === undefined) return requestFixedReadLength(this.#keys);
    if (this.#chunks === undefined) return this.#fixed.variableHeaderLength + TAG_SIZE;
    return this.#chunks.wanted;
  }

  /** True where the stream may end cleanly (after the headers, between chunks). */
  get atChunkBoundary(): boolean {
    return this.#chunks !== undefined && this.#chunks.atChunkBoundary;
  }

  /** Decodes from the front of `input`; see `ChunkDecoder.next`. */
  next(input: Uint8Array): RequestStep {
    if (this.#chunks !== undefined) return this.#chunks.next(input);
    let consumed = 0;
    if (this.#fixed === undefined) {
      this.#fixed = openRequestFixedHeader(this.#keys, input, this.#options);
      if (this.#fixed === undefined) return { consumed: 0, payload: null };
      consumed = requestFixedReadLength(this.#keys);
    }
    const fixed = this.#fixed;
    const variable = openRequestVariableHeader(fixed, input.subarray(consumed));
    if (variable === undefined) return { consumed, payload: null };
    consumed += fixed.variableHeaderLength + TAG_SIZE;
    const request: Request2022 = {
      method: this.#keys.method,
      psk: fixed.psk,
      requestSalt: fixed.salt,
      address: variable.address,
      paddingLength: variable.paddingLength,
      timestamp: fixed.timestamp,
      skew: fixed.skew,
      ...(fixed.user === undefined ? {} : { user: fixed.user }),
    };
    this.#request = request;
    this.#chunks = new ChunkDecoder(fixed.cipher, MAX_CHUNK_PAYLOAD_2022);
    return { consumed, payload: variable.payload, request };
  }
}

/** Options of {@linkcode sealResponse}. */
export interface SealResponseOptions {
  /** The response salt. Default: random. For tests. */
  salt?: Uint8Array;
  /**
   * The salt and the cipher keyed from it with the session's PSK, made ahead
   * (protocol/spare_writer_key.ts). Default: made here (from `salt`, when given).
   */
  writerKey?: WriterKey;
  /** Wall clock in milliseconds. Default: `Date.now`. */
  now?: () => number;
}

/** A sealed response start and the state to continue with. */
export interface SealedResponse {
  /** salt + header + first payload chunk (+ chunks for payload over 65535 bytes). */
  readonly bytes: Uint8Array;
  readonly salt: Uint8Array;
  /** The server's sealing cipher: later data goes through `sealChunks(cipher, data, 0xFFFF)`. */
  readonly cipher: AeadCipher;
}

/**
 * Server side: the start of the response stream with the first payload (which must not be
 * empty: peers reject an empty first chunk), as one buffer.
 */
export function sealResponse(
  context: ResponseContext,
  payload: Uint8Array,
  options: SealResponseOptions = {},
): SealedResponse {
  const { method } = context;
  if (payload.length === 0) {
    throw new RangeError("Invalid response: the first chunk needs at least one byte of payload");
  }
  const saltSize = method.saltSize;
  const made = options.writerKey;
  const givenSalt = checkedGivenSalt(saltSize, options);
  if (context.requestSalt.length !== saltSize) {
    throw new RangeError(
      `Invalid request salt: expected ${saltSize} bytes, got ${context.requestSalt.length}`,
    );
  }
  const first = payload.subarray(0, MAX_CHUNK_PAYLOAD_2022);
  const rest = payload.subarray(first.length);
  const headerLength = responseHeaderLength(saltSize);
  const header = RESPONSE_HEADER.subarray(0, headerLength);
  writeResponseHeader({
    timestamp: unixSeconds((options.now ?? Date.now)()),
    requestSalt: context.requestSalt,
    length: first.length,
  }, header);
  // Salt, header, first chunk and the rest, sealed into one buffer (as the request).
  const out = new Uint8Array(
    saltSize + headerLength + TAG_SIZE + first.length + TAG_SIZE +
      sealedLength(rest.length, TAG_SIZE, MAX_CHUNK_PAYLOAD_2022),
  );
  const salt = writeSalt(out, saltSize, givenSalt);
  const cipher = made?.cipher ?? createTcpCipher2022(method, context.psk, salt);
  let at = saltSize;
  at += cipher.sealInto(header, out.subarray(at));
  at += cipher.sealInto(first, out.subarray(at));
  sealChunksInto(cipher, rest, MAX_CHUNK_PAYLOAD_2022, out, at);
  return { bytes: out, salt: made?.salt ?? out.slice(0, saltSize), cipher };
}

/**
 * Where a fixed header (the request's 11 bytes, the response's 27 or 43) is opened: decoded at
 * once and never kept, so it needs no array of its own.
 */
const OPENED_HEADER = new Uint8Array(responseHeaderLength(32));

/** Where a response header is written before it is sealed (27 or 43 bytes). */
const RESPONSE_HEADER = new Uint8Array(responseHeaderLength(32));

/**
 * The salt a first flight was given, a made key's or `salt` (tests), checked; undefined: none, a
 * random one is written.
 */
function checkedGivenSalt(
  saltSize: number,
  options: { salt?: Uint8Array | undefined; writerKey?: WriterKey | undefined },
): Uint8Array | undefined {
  const given = options.writerKey?.salt ?? options.salt;
  if (given && given.length !== saltSize) {
    throw new RangeError(`Invalid salt: expected ${saltSize} bytes, got ${given.length}`);
  }
  return given;
}

/** A first flight's salt at the start of `out`: `given` or random; returns its view. */
function writeSalt(out: Uint8Array, saltSize: number, given: Uint8Array | undefined): Uint8Array {
  const salt = out.subarray(0, saltSize);
  if (given) salt.set(given);
  else crypto.getRandomValues(salt);
  return salt;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function checkType(type: number, expected: number): void {
  if (type !== expected) {
    throw new ProtocolError(
      "ERR_CIPHER",
      `Invalid header type: expected ${expected}, got ${type}`,
    );
  }
}

function checkPaddingLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_PADDING_LENGTH) {
    throw new RangeError(`Invalid padding length ${length}: expected 0 to ${MAX_PADDING_LENGTH}`);
  }
}

function checkU16(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`Invalid ${what} ${value}: expected 0 to 65535`);
  }
}

/** Writes a timestamp as a big-endian u64 at `at`. */
function writeU64(out: Uint8Array, at: number, timestamp: number): void {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(`Invalid timestamp ${timestamp}: expected a non-negative integer`);
  }
  const high = Math.floor(timestamp / 0x1_0000_0000);
  const low = timestamp >>> 0;
  for (let i = 0; i < 4; i++) {
    out[at + i] = (high >>> (24 - 8 * i)) & 0xff;
    out[at + 4 + i] = (low >>> (24 - 8 * i)) & 0xff;
  }
}

/**
 * Reads a big-endian u64 at `at` as the nearest number, as `Number(getBigUint64)` would (both
 * halves are exact and their sum is rounded once), without the DataView and the BigInt.
 */
function readU64(bytes: Uint8Array, at: number): number {
  const high = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
  const low = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) |
    bytes[at + 7]!) >>> 0;
  return high * 0x1_0000_0000 + low;
}

/** A uniform-enough integer in 0..limit-1 for padding lengths (not for keys). */
function randomBelow(limit: number): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! % limit;
}
