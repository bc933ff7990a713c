/**
 * Shadowsocks 2022 UDP (SIP022, with SIP023 identity headers for the AES methods). Every packet
 * stands alone; sessions are named by a random 64-bit session ID and packets numbered by a
 * per-session 64-bit packet ID (replay: protocol/sliding_window.ts).
 *
 * AES methods (`2022-blake3-aes-128-gcm`, `2022-blake3-aes-256-gcm`):
 *
 * ```
 * +------------------------------+--------------------+---------------------------------+
 * | AES block(key, separate hdr) | EIH × n            | AEAD(subkey, nonce, body) + tag |
 * | 16                           | 16 each, requests  | body + 16                       |
 * +------------------------------+--------------------+---------------------------------+
 *
 * separate header (16)                     nonce  = separate header[4..16]
 * +--------------+-----------------------+ key    = PSK; the first iPSK in a request with EIHs
 * | session ID 8 | packet ID 8, u64 BE   | subkey = derive_key("shadowsocks 2022 session subkey",
 * +--------------+-----------------------+                     PSK || session ID)   (uPSK with EIH)
 * ```
 *
 * ChaCha method (`2022-blake3-chacha20-poly1305`), no separate header and no EIH:
 *
 * ```
 * +----------+-----------------------------------------------------------------+
 * | nonce 24 | XChaCha20-Poly1305(key = PSK, nonce,                            |
 * |          |          session ID 8 | packet ID 8 | body) + tag 16            |
 * +----------+-----------------------------------------------------------------+
 * ```
 *
 * Bodies (after decryption):
 *
 * ```
 * client → server
 * +-----------+-------------+-------------------+---------+---------+---------+
 * | type 1: 0 | timestamp 8 | padding length 2  | padding | address | payload |
 * +-----------+-------------+-------------------+---------+---------+---------+
 * server → client
 * +-----------+-------------+---------------------+-------------------+---------+---------+---------+
 * | type 1: 1 | timestamp 8 | client session ID 8 | padding length 2  | padding | address | payload |
 * +-----------+-------------+---------------------+-------------------+---------+---------+---------+
 * ```
 *
 * The address is the target (client → server) or the payload's source (server → client).
 * Padding is 0..900 bytes (default 0 here). The receiver's order (NOTES §7.5): separate header →
 * user → session cipher → open body → type, timestamp (±30 s), client session ID → only then the
 * caller updates its sliding window and session state.
 *
 * Status codes: short packet, bad tag, unknown user or wrong type → `ERR_CIPHER`; timestamp or
 * another session's reply → `ERR_REPLAY`; malformed padding or address → `ERR_READ_ADDRESS`.
 * Pure code: no sockets.
 * @module
 */
import type { AeadPrimitive } from "../crypto/aead_primitive.ts";
import { aesBlockCipherFor } from "../crypto/aes_block.ts";
import { createAeadPrimitive } from "../crypto/backend.ts";
import { sessionSubkey2022View } from "../crypto/kdf2022.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { createXChaCha20Poly1305, XCHACHA_NONCE_SIZE } from "../crypto/xchacha20_poly1305.ts";
import { type Address, decodeAddress, encodeAddress, encodedAddressLength } from "./address.ts";
import {
  type ClientKeys2022,
  EIH_SIZE,
  openUdpIdentityHeader,
  requireUser,
  sealUdpIdentityHeaders,
  type ServerKeys2022,
  type User2022,
} from "./aead2022_identity.ts";
import { HEADER_TYPE_CLIENT, HEADER_TYPE_SERVER, MAX_PADDING_LENGTH } from "./aead2022_tcp.ts";
import { checkTimestamp, unixSeconds } from "./aead2022_time.ts";
import { ProtocolError } from "./errors.ts";
import { concatBytes } from "../crypto/bytes.ts";

/** Bytes of the separate header (session ID + packet ID). */
export const SEPARATE_HEADER_LENGTH = 16;
export { XCHACHA_NONCE_SIZE };

const TAG_SIZE = 16;
const U64_LIMIT = 1n << 64n;

// ---------------------------------------------------------------------------------------------
// Codecs

/** Session ID and packet ID. */
export interface SeparateHeader {
  readonly sessionId: bigint;
  readonly packetId: bigint;
}

/** Encodes the 16-byte separate header (plaintext). */
export function encodeSeparateHeader(header: SeparateHeader): Uint8Array {
  const out = new Uint8Array(SEPARATE_HEADER_LENGTH);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, checkU64("session ID", header.sessionId));
  view.setBigUint64(8, checkU64("packet ID", header.packetId));
  return out;
}

/** Decodes a separate header from the front of `bytes`; `undefined` when shorter than 16. */
export function decodeSeparateHeader(bytes: Uint8Array): SeparateHeader | undefined {
  if (bytes.length < SEPARATE_HEADER_LENGTH) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { sessionId: view.getBigUint64(0), packetId: view.getBigUint64(8) };
}

/** A packet body without its type byte. `clientSessionId` is present in server replies only. */
export interface UdpBody {
  /** Unix time in seconds. */
  readonly timestamp: number;
  /** The client's session ID (server → client bodies only). */
  readonly clientSessionId?: bigint;
  readonly paddingLength: number;
  readonly address: Address;
  readonly payload: Uint8Array;
}

/** Bytes `encodeUdpBody(body)` produces. */
export function udpBodyLength(body: UdpBody): number {
  return 1 + 8 + (body.clientSessionId === undefined ? 0 : 8) + 2 + body.paddingLength +
    encodedAddressLength(body.address) + body.payload.length;
}

/**
 * Encodes a body with random padding: type 1 (server) when `clientSessionId` is set, else
 * type 0 (client). Throws `RangeError` for padding outside 0..900.
 */
export function encodeUdpBody(body: UdpBody): Uint8Array {
  if (
    !Number.isInteger(body.paddingLength) || body.paddingLength < 0 ||
    body.paddingLength > MAX_PADDING_LENGTH
  ) {
    throw new RangeError(
      `Invalid padding length ${body.paddingLength}: expected 0 to ${MAX_PADDING_LENGTH}`,
    );
  }
  if (!Number.isSafeInteger(body.timestamp) || body.timestamp < 0) {
    throw new RangeError(`Invalid timestamp ${body.timestamp}: expected a non-negative integer`);
  }
  const out = new Uint8Array(udpBodyLength(body));
  const view = new DataView(out.buffer);
  const isServer = body.clientSessionId !== undefined;
  out[0] = isServer ? HEADER_TYPE_SERVER : HEADER_TYPE_CLIENT;
  view.setBigUint64(1, BigInt(body.timestamp));
  let at = 9;
  if (body.clientSessionId !== undefined) {
    view.setBigUint64(at, checkU64("client session ID", body.clientSessionId));
    at += 8;
  }
  view.setUint16(at, body.paddingLength);
  at += 2;
  crypto.getRandomValues(out.subarray(at, at + body.paddingLength));
  at += body.paddingLength;
  const address = encodeAddress(body.address);
  out.set(address, at);
  out.set(body.payload, at + address.length);
  return out;
}

/**
 * Decodes a whole, authenticated body of the given direction. The plaintext is complete, so a
 * short body is an error, not "need more": wrong type → `ERR_CIPHER`; fields, padding or
 * address running past the end, or padding over 900 → `ERR_READ_ADDRESS`.
 */
export function decodeUdpBody(bytes: Uint8Array, from: "client" | "server"): UdpBody {
  const isServer = from === "server";
  const fixed = isServer ? 19 : 11;
  if (bytes.length < 1) throw bodyError(`Packet body too short: expected ${fixed}, got 0`);
  const type = bytes[0]!;
  const expectedType = isServer ? HEADER_TYPE_SERVER : HEADER_TYPE_CLIENT;
  if (type !== expectedType) {
    throw new ProtocolError(
      "ERR_CIPHER",
      `Invalid packet type: expected ${expectedType}, got ${type}`,
    );
  }
  if (bytes.length < fixed) {
    throw bodyError(`Packet body too short: expected ${fixed}, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const timestamp = Number(view.getBigUint64(1));
  let at = 9;
  let clientSessionId: bigint | undefined;
  if (isServer) {
    clientSessionId = view.getBigUint64(at);
    at += 8;
  }
  const paddingLength = view.getUint16(at);
  at += 2;
  if (paddingLength > MAX_PADDING_LENGTH) {
    throw bodyError(
      `Padding too long: expected at most ${MAX_PADDING_LENGTH}, got ${paddingLength}`,
    );
  }
  if (bytes.length < at + paddingLength) {
    throw bodyError(
      `Padding runs past the end of the packet: expected at least ${
        at + paddingLength
      }, got ${bytes.length}`,
    );
  }
  at += paddingLength;
  const decoded = decodeAddress(bytes.subarray(at));
  if (decoded === undefined) {
    throw bodyError(
      `Address runs past the end of the packet: packet body is ${bytes.length} bytes`,
    );
  }
  const body = {
    timestamp,
    paddingLength,
    address: decoded.address,
    payload: bytes.subarray(at + decoded.length),
  };
  return clientSessionId === undefined ? body : { ...body, clientSessionId };
}

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The body AEAD of one AES-method session: `derive_key(..., psk || sessionId)`, from the
 * project's measured backend (crypto/backend.ts). Keep one per session: deriving costs ~5 µs.
 */
export function createUdpSessionAead(
  method: MethodInfo,
  psk: Uint8Array,
  sessionId: bigint,
): AeadPrimitive {
  if (!isAesMethod(method)) {
    throw new RangeError(`Method ${method.name} has no per-session UDP subkey`);
  }
  const id = encodeSeparateHeader({ sessionId, packetId: 0n }).subarray(0, 8);
  return createAeadPrimitive(method.algorithm!, sessionSubkey2022View(psk, id, method.keySize));
}

/** A random, non-zero session ID. */
export function randomSessionId(): bigint {
  const view = new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer);
  const id = view.getBigUint64(0);
  return id === 0n ? 1n : id;
}

// ---------------------------------------------------------------------------------------------
// Packets

/** What a client sends in one packet. */
export interface ClientPacket2022 {
  readonly sessionId: bigint;
  readonly packetId: bigint;
  /** The target. */
  readonly address: Address;
  readonly payload: Uint8Array;
  /** Default 0. */
  readonly paddingLength?: number;
}

/** What a server sends in one packet. */
export interface ServerPacket2022 {
  /** The server's own session ID for this client session (random, not the client's). */
  readonly sessionId: bigint;
  readonly packetId: bigint;
  /** The client session this answers. */
  readonly clientSessionId: bigint;
  /** Where the payload came from. */
  readonly address: Address;
  readonly payload: Uint8Array;
  /** Default 0. */
  readonly paddingLength?: number;
}

/** Options of the sealing functions. */
export interface UdpSealOptions {
  /**
   * This session's body AEAD from `createUdpSessionAead` (AES methods; ignored, and may be
   * `undefined`, for the ChaCha method). Default: derived for every packet.
   */
  aead?: AeadPrimitive | undefined;
  /** Wall clock in milliseconds. Default: `Date.now`. */
  now?: () => number;
}

/** Options of the opening functions. */
export interface UdpOpenOptions {
  /**
   * Returns the body AEAD of a session (AES methods), e.g. from the caller's session table;
   * key a cache by session ID and PSK together. Default: derived for every packet.
   */
  aeadFor?: (sessionId: bigint, psk: Uint8Array) => AeadPrimitive;
  /** Wall clock in milliseconds. Default: `Date.now`. */
  now?: () => number;
}

/** A client packet as the server sees it. */
export interface OpenedClientPacket extends SeparateHeader {
  /** The user its EIH named (multi-user servers). */
  readonly user?: User2022;
  /** The PSK of the session: reply with it. */
  readonly psk: Uint8Array;
  readonly timestamp: number;
  /** Client time minus local time, in seconds. */
  readonly skew: number;
  readonly paddingLength: number;
  readonly address: Address;
  readonly payload: Uint8Array;
}

/** A server packet as the client sees it. */
export interface OpenedServerPacket extends SeparateHeader {
  readonly clientSessionId: bigint;
  readonly timestamp: number;
  /** Server time minus local time, in seconds. */
  readonly skew: number;
  readonly paddingLength: number;
  readonly address: Address;
  readonly payload: Uint8Array;
}

/** Client side: seals one packet to the server (with EIHs when the keys have iPSKs). */
export function sealClientPacket(
  keys: ClientKeys2022,
  packet: ClientPacket2022,
  options: UdpSealOptions = {},
): Uint8Array {
  const { method } = keys;
  const body = encodeUdpBody({
    timestamp: unixSeconds((options.now ?? Date.now)()),
    paddingLength: packet.paddingLength ?? 0,
    address: packet.address,
    payload: packet.payload,
  });
  if (!isAesMethod(method)) {
    if (keys.identityPsks.length > 0) {
      throw new RangeError(`Method ${method.name} cannot carry identity headers`);
    }
    return sealChaCha(keys.userPsk, packet, body);
  }
  const header = encodeSeparateHeader(packet);
  const aead = options.aead ?? createUdpSessionAead(method, keys.userPsk, packet.sessionId);
  const headerKey = keys.identityPsks[0] ?? keys.userPsk;
  return concatBytes(
    aesBlockCipherFor(headerKey).encrypt(header),
    sealUdpIdentityHeaders(keys, header),
    aead.seal(header.subarray(4), body),
  );
}

/**
 * Server side: opens one client packet. With users, the separate header and the one EIH are
 * read with the server's iPSK and the body with the named user's PSK. Throws `ProtocolError`.
 */
export function openClientPacket(
  keys: ServerKeys2022,
  bytes: Uint8Array,
  options: UdpOpenOptions = {},
): OpenedClientPacket {
  const { method } = keys;
  const now = (options.now ?? Date.now)();
  if (!isAesMethod(method)) {
    if (keys.users !== undefined) {
      throw new RangeError(`Method ${method.name} cannot carry identity headers`);
    }
    const { header, plain } = openChaCha(keys.psk, bytes, 11);
    const body = decodeUdpBody(plain, "client");
    const skew = checkTimestamp(body.timestamp, now);
    return { ...header, psk: keys.psk, skew, ...bodyFields(body) };
  }
  const eihLength = keys.users === undefined ? 0 : EIH_SIZE;
  checkLength(bytes, SEPARATE_HEADER_LENGTH + eihLength + 11 + TAG_SIZE);
  const sealedHeader = bytes.subarray(0, SEPARATE_HEADER_LENGTH);
  const plainHeader = aesBlockCipherFor(keys.psk).decrypt(sealedHeader);
  const header = decodeSeparateHeader(plainHeader)!;
  let user: User2022 | undefined;
  if (keys.users !== undefined) {
    const eih = bytes.subarray(SEPARATE_HEADER_LENGTH, SEPARATE_HEADER_LENGTH + EIH_SIZE);
    user = requireUser(keys.users, openUdpIdentityHeader(keys.psk, eih, plainHeader));
  }
  const psk = user?.psk ?? keys.psk;
  const aead = options.aeadFor?.(header.sessionId, psk) ??
    createUdpSessionAead(method, psk, header.sessionId);
  const plain = openOrThrow(
    aead,
    plainHeader.subarray(4),
    bytes.subarray(SEPARATE_HEADER_LENGTH + eihLength),
  );
  const body = decodeUdpBody(plain, "client");
  const skew = checkTimestamp(body.timestamp, now);
  const opened = { ...header, psk, skew, ...bodyFields(body) };
  return user === undefined ? opened : { ...opened, user };
}

/** Server side: seals one reply packet under the session's PSK (no EIH in replies). */
export function sealServerPacket(
  method: MethodInfo,
  psk: Uint8Array,
  packet: ServerPacket2022,
  options: UdpSealOptions = {},
): Uint8Array {
  const body = encodeUdpBody({
    timestamp: unixSeconds((options.now ?? Date.now)()),
    clientSessionId: packet.clientSessionId,
    paddingLength: packet.paddingLength ?? 0,
    address: packet.address,
    payload: packet.payload,
  });
  if (!isAesMethod(method)) return sealChaCha(psk, packet, body);
  const header = encodeSeparateHeader(packet);
  const aead = options.aead ?? createUdpSessionAead(method, psk, packet.sessionId);
  return concatBytes(aesBlockCipherFor(psk).encrypt(header), aead.seal(header.subarray(4), body));
}

/**
 * Client side: opens one reply packet with the user PSK. When `clientSessionId` is given, a
 * reply to another session is `ProtocolError("ERR_REPLAY")`.
 */
export function openServerPacket(
  keys: ClientKeys2022,
  bytes: Uint8Array,
  options: UdpOpenOptions & { clientSessionId?: bigint } = {},
): OpenedServerPacket {
  const { method } = keys;
  const now = (options.now ?? Date.now)();
  let header: SeparateHeader;
  let plain: Uint8Array;
  if (isAesMethod(method)) {
    checkLength(bytes, SEPARATE_HEADER_LENGTH + 19 + TAG_SIZE);
    const plainHeader = aesBlockCipherFor(keys.userPsk).decrypt(
      bytes.subarray(0, SEPARATE_HEADER_LENGTH),
    );
    header = decodeSeparateHeader(plainHeader)!;
    const aead = options.aeadFor?.(header.sessionId, keys.userPsk) ??
      createUdpSessionAead(method, keys.userPsk, header.sessionId);
    plain = openOrThrow(aead, plainHeader.subarray(4), bytes.subarray(SEPARATE_HEADER_LENGTH));
  } else {
    ({ header, plain } = openChaCha(keys.userPsk, bytes, 19));
  }
  const body = decodeUdpBody(plain, "server");
  const skew = checkTimestamp(body.timestamp, now);
  const clientSessionId = body.clientSessionId!;
  if (options.clientSessionId !== undefined && options.clientSessionId !== clientSessionId) {
    throw new ProtocolError(
      "ERR_REPLAY",
      "Reply belongs to another session: client session ID mismatch",
    );
  }
  return { ...header, clientSessionId, skew, ...bodyFields(body) };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isAesMethod(method: MethodInfo): boolean {
  if (method.family !== "aead2022" || method.algorithm === undefined) {
    throw new RangeError(`Method ${method.name} is not a 2022 method`);
  }
  return method.algorithm !== "chacha20-poly1305";
}

function sealChaCha(psk: Uint8Array, ids: SeparateHeader, body: Uint8Array): Uint8Array {
  const nonce = crypto.getRandomValues(new Uint8Array(XCHACHA_NONCE_SIZE));
  const plain = concatBytes(encodeSeparateHeader(ids), body);
  return concatBytes(nonce, xchachaFor(psk).seal(nonce, plain));
}

function openChaCha(
  psk: Uint8Array,
  bytes: Uint8Array,
  minBody: number,
): { header: SeparateHeader; plain: Uint8Array } {
  checkLength(bytes, XCHACHA_NONCE_SIZE + SEPARATE_HEADER_LENGTH + minBody + TAG_SIZE);
  const nonce = bytes.subarray(0, XCHACHA_NONCE_SIZE);
  const plain = openOrThrow(xchachaFor(psk), nonce, bytes.subarray(XCHACHA_NONCE_SIZE));
  return {
    header: decodeSeparateHeader(plain)!,
    plain: plain.subarray(SEPARATE_HEADER_LENGTH),
  };
}

const xchachaCache = new WeakMap<Uint8Array, AeadPrimitive>();

function xchachaFor(psk: Uint8Array): AeadPrimitive {
  let aead = xchachaCache.get(psk);
  if (aead === undefined) {
    aead = createXChaCha20Poly1305(psk);
    xchachaCache.set(psk, aead);
  }
  return aead;
}

function openOrThrow(aead: AeadPrimitive, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  const plain = aead.open(nonce, sealed);
  if (plain === null) {
    throw new ProtocolError("ERR_CIPHER", "Authentication failed: tag mismatch");
  }
  return plain;
}

function checkLength(bytes: Uint8Array, minimum: number): void {
  if (bytes.length < minimum) {
    throw new ProtocolError(
      "ERR_CIPHER",
      `Packet too short: expected at least ${minimum}, got ${bytes.length}`,
    );
  }
}

function bodyFields(body: UdpBody) {
  return {
    timestamp: body.timestamp,
    paddingLength: body.paddingLength,
    address: body.address,
    payload: body.payload,
  };
}

function bodyError(message: string): ProtocolError {
  return new ProtocolError("ERR_READ_ADDRESS", message);
}

function checkU64(what: string, value: bigint): bigint {
  if (value < 0n || value >= U64_LIMIT) {
    throw new RangeError(`Invalid ${what} ${value}: expected 0 to 2^64 - 1`);
  }
  return value;
}
