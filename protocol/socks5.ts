/**
 * SOCKS5 (RFC 1928) messages the local side reads and writes. Pure parsers: each returns
 * `undefined` while its input is a strict prefix of a message ("need more").
 *
 * ```
 * greeting  +-----+----------+----------+     request  +-----+-----+-----+---------+
 *           | VER | NMETHODS | METHODS  |              | VER | CMD | RSV | address |
 *           | 05  | 1        | 1..255   |              | 05  | 1   | 00  | var     |
 *           +-----+----------+----------+              +-----+-----+-----+---------+
 * reply     | VER 05 | REP | RSV 00 | bound address |
 * ```
 * @module
 */
import {
  type Address,
  decodeAddress,
  encodeAddress,
  UnsupportedAddressTypeError,
} from "./address.ts";
import { ProtocolError } from "./errors.ts";

export const SOCKS_VERSION = 0x05;
export const METHOD_NO_AUTH = 0x00;
export const METHOD_NONE_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

/** Reply codes (REP). */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export interface Greeting {
  readonly methods: Uint8Array;
  readonly length: number;
}

/** Parses the client's greeting; throws `ProtocolError` when it is not SOCKS5. */
export function parseGreeting(bytes: Uint8Array): Greeting | undefined {
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== SOCKS_VERSION) {
    throw new ProtocolError("ERR_READ_ADDRESS", `Unsupported SOCKS version ${bytes[0]}`);
  }
  const count = bytes[1]!;
  if (count === 0) throw new ProtocolError("ERR_READ_ADDRESS", "SOCKS5 greeting lists no methods");
  if (bytes.length < 2 + count) return undefined;
  return { methods: bytes.slice(2, 2 + count), length: 2 + count };
}

export interface SocksRequest {
  readonly command: number;
  readonly address: Address;
  readonly length: number;
}

/** The outcome of a request the server cannot serve but must answer with a REP code. */
export class SocksRequestError extends ProtocolError {
  readonly reply: number;
  constructor(reply: number, message: string) {
    super("ERR_READ_ADDRESS", message);
    this.reply = reply;
  }
}

/**
 * Parses a request. Unknown address types raise `SocksRequestError` with REP 0x08, so the
 * caller can answer before closing.
 */
export function parseRequest(bytes: Uint8Array): SocksRequest | undefined {
  if (bytes.length < 4) return undefined;
  if (bytes[0] !== SOCKS_VERSION) {
    throw new ProtocolError("ERR_READ_ADDRESS", `Unsupported SOCKS version ${bytes[0]}`);
  }
  let decoded;
  try {
    decoded = decodeAddress(bytes.subarray(3));
  } catch (error) {
    if (error instanceof UnsupportedAddressTypeError) {
      throw new SocksRequestError(Reply.addressTypeNotSupported, error.message);
    }
    throw error;
  }
  if (!decoded) return undefined;
  return { command: bytes[1]!, address: decoded.address, length: 3 + decoded.length };
}

/** Encodes a reply; the bound address defaults to `0.0.0.0:0`. */
export function encodeReply(
  reply: number,
  bound: Address = { type: "ipv4", host: "0.0.0.0", port: 0 },
): Uint8Array {
  const address = encodeAddress(bound);
  const out = new Uint8Array(3 + address.length);
  out[0] = SOCKS_VERSION;
  out[1] = reply;
  out.set(address, 3);
  return out;
}
