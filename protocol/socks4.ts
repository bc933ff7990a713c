/**
 * SOCKS4 and SOCKS4a requests and replies (Ying-Da Lee's SOCKS4.protocol and socks4a.protocol).
 * Pure parsers: `undefined` while the input is a strict prefix of a message ("need more").
 *
 * ```
 * request  +----+----+---------+-------+-----------+------+ 4a only: +--------+------+
 *          | VN | CD | DSTPORT | DSTIP | USERID    | NULL |          | HOST   | NULL |
 *          | 04 | 1  | 2       | 4     | 0..255    | 00   |          | 1..255 | 00   |
 *          +----+----+---------+-------+-----------+------+          +--------+------+
 *          SOCKS4a: DSTIP is 0.0.0.x with x != 0 and the name follows the USERID's NULL.
 * reply    | VN 00 | CD 5A granted, 5B rejected | DSTPORT 2 | DSTIP 4 |   (always 8 bytes)
 * ```
 * @module
 */
import { type Address, addressFromHost, formatIpv4, parseIpv4 } from "./address.ts";
import { ProtocolError } from "./errors.ts";

export const SOCKS4_VERSION = 0x04;
/** The reply's VN is the reply-format version 0, not 4. */
export const SOCKS4_REPLY_VERSION = 0x00;

export const SOCKS4_CONNECT = 0x01;
export const SOCKS4_BIND = 0x02;

/** Reply codes (CD). We only send `granted` and `rejected`; the identd codes are listed for completeness. */
export const Socks4Reply = {
  granted: 0x5a,
  rejected: 0x5b,
  identdUnreachable: 0x5c,
  identdMismatch: 0x5d,
} as const;

/** Longest USERID and SOCKS4a host name we read, without their NULL. */
export const SOCKS4_MAX_FIELD = 255;

export interface Socks4Request {
  /** CD as sent: `SOCKS4_CONNECT`, `SOCKS4_BIND` or anything else (answer `rejected`). */
  readonly command: number;
  readonly address: Address;
  /** Informational only (SOCKS4 has no authentication); decoded leniently for logs. */
  readonly userId: string;
  readonly length: number;
}

const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses a SOCKS4 or SOCKS4a request. Throws `ProtocolError`: `ERR_CLIENT_PROTOCOL` for another
 * version or a USERID over 255 bytes (so a peer cannot keep us reading), `ERR_READ_ADDRESS` for
 * a host name over 255 bytes, empty or not UTF-8.
 * The longest request is 8 + 256 + 256 = 520 bytes.
 */
export function parseSocks4Request(bytes: Uint8Array): Socks4Request | undefined {
  if (bytes.length < 1) return undefined;
  if (bytes[0] !== SOCKS4_VERSION) {
    throw new ProtocolError("ERR_CLIENT_PROTOCOL", `Unsupported SOCKS version ${bytes[0]}`);
  }
  if (bytes.length < 8) return undefined;
  const userEnd = findNul(bytes, 8, "user id");
  if (userEnd === undefined) return undefined;
  const port = (bytes[2]! << 8) | bytes[3]!;
  const ip = bytes.subarray(4, 8);
  const userId = lenient.decode(bytes.subarray(8, userEnd));
  const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  if (!is4a) {
    return {
      command: bytes[1]!,
      address: { type: "ipv4", host: formatIpv4(ip), port },
      userId,
      length: userEnd + 1,
    };
  }
  const hostEnd = findNul(bytes, userEnd + 1, "host name");
  if (hostEnd === undefined) return undefined;
  if (hostEnd === userEnd + 1) {
    throw new ProtocolError("ERR_READ_ADDRESS", "Invalid SOCKS4a host name: it is empty");
  }
  let host: string;
  try {
    host = strict.decode(bytes.subarray(userEnd + 1, hostEnd));
  } catch (error) {
    throw new ProtocolError("ERR_READ_ADDRESS", "Invalid SOCKS4a host name: not UTF-8", {
      cause: error,
    });
  }
  return { command: bytes[1]!, address: addressFromHost(host, port), userId, length: hostEnd + 1 };
}

/** Index of the NULL ending a field that starts at `from`, or `undefined` when it may follow. */
function findNul(bytes: Uint8Array, from: number, what: string): number | undefined {
  const limit = Math.min(bytes.length, from + SOCKS4_MAX_FIELD + 1);
  const at = bytes.subarray(0, limit).indexOf(0, from);
  if (at >= 0) return at;
  if (limit - from > SOCKS4_MAX_FIELD) {
    throw new ProtocolError(
      what === "user id" ? "ERR_CLIENT_PROTOCOL" : "ERR_READ_ADDRESS",
      `Invalid SOCKS4 ${what}: longer than ${SOCKS4_MAX_FIELD} bytes`,
    );
  }
  return undefined;
}

/**
 * Encodes the 8-byte reply. Clients ignore DSTPORT/DSTIP for CONNECT, so they default to zeros;
 * a bound address that is not IPv4 cannot be expressed and is sent as zeros too.
 */
export function encodeSocks4Reply(code: number, bound?: Address): Uint8Array {
  const out = new Uint8Array(8);
  out[0] = SOCKS4_REPLY_VERSION;
  out[1] = code;
  if (bound?.type === "ipv4") {
    out[2] = bound.port >> 8;
    out[3] = bound.port & 0xff;
    out.set(parseIpv4(bound.host), 4);
  }
  return out;
}
