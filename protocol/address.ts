/**
 * The SOCKS5 address, which is also the Shadowsocks address header:
 *
 * ```
 * +------+----------------------------+----------+
 * | ATYP | ADDR                       | PORT     |
 * +------+----------------------------+----------+
 * | 0x01 | 4 bytes IPv4               | u16 BE   |
 * | 0x03 | 1 byte length L, L bytes   | u16 BE   |
 * | 0x04 | 16 bytes IPv6              | u16 BE   |
 * +------+----------------------------+----------+
 * ```
 * @module
 */
import { ProtocolError } from "./errors.ts";

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** A target: an IP literal or a domain name, and a port. */
export interface Address {
  readonly type: "ipv4" | "ipv6" | "domain";
  /** Dotted IPv4, compressed IPv6 (no brackets), or the domain name. */
  readonly host: string;
  readonly port: number;
}

/** A decoded address and how many bytes it took. */
export interface DecodedAddress {
  readonly address: Address;
  readonly length: number;
}

/** Thrown for an address type this codec does not know (SOCKS5 REP 0x08). */
export class UnsupportedAddressTypeError extends ProtocolError {
  readonly atyp: number;
  constructor(atyp: number) {
    super("ERR_READ_ADDRESS", `Unsupported address type 0x${atyp.toString(16).padStart(2, "0")}`);
    this.atyp = atyp;
  }
}

/**
 * Decodes an address from the front of `bytes`. Returns `undefined` when `bytes` is a strict
 * prefix of an address (need more); throws `ProtocolError` for malformed input.
 */
export function decodeAddress(bytes: Uint8Array): DecodedAddress | undefined {
  if (bytes.length < 1) return undefined;
  const atyp = bytes[0]!;
  let hostEnd: number;
  let host: string;
  let type: Address["type"];
  switch (atyp) {
    case ATYP_IPV4:
      hostEnd = 5;
      if (bytes.length < hostEnd + 2) return undefined;
      host = formatIpv4(bytes.subarray(1, 5));
      type = "ipv4";
      break;
    case ATYP_IPV6:
      hostEnd = 17;
      if (bytes.length < hostEnd + 2) return undefined;
      host = formatIpv6(bytes.subarray(1, 17));
      type = "ipv6";
      break;
    case ATYP_DOMAIN: {
      if (bytes.length < 2) return undefined;
      const nameLength = bytes[1]!;
      if (nameLength === 0) {
        throw new ProtocolError("ERR_READ_ADDRESS", "Invalid domain name: length is 0");
      }
      hostEnd = 2 + nameLength;
      if (bytes.length < hostEnd + 2) return undefined;
      host = decodeDomain(bytes.subarray(2, hostEnd));
      type = "domain";
      break;
    }
    default:
      throw new UnsupportedAddressTypeError(atyp);
  }
  const port = (bytes[hostEnd]! << 8) | bytes[hostEnd + 1]!;
  return { address: { type, host, port }, length: hostEnd + 2 };
}

/** Number of bytes `encodeAddress(address)` produces. */
export function encodedAddressLength(address: Address): number {
  switch (address.type) {
    case "ipv4":
      return 7;
    case "ipv6":
      return 19;
    case "domain":
      return 4 + new TextEncoder().encode(address.host).length;
  }
}

/** The address `encodedAddressOf` encoded last, and its bytes. */
let lastAddress: Address | undefined;
let lastEncoded: Uint8Array = new Uint8Array(0);

/**
 * `encodeAddress`, with the last address object kept: a tunnel encodes its one target for every
 * session. The bytes are shared, so callers copy from them and never change them.
 */
export function encodedAddressOf(address: Address): Uint8Array {
  if (address !== lastAddress) {
    lastEncoded = encodeAddress(address);
    lastAddress = address;
  }
  return lastEncoded;
}

/** Encodes an address; throws `RangeError` for a name over 255 bytes or a bad literal. */
export function encodeAddress(address: Address): Uint8Array {
  let out: Uint8Array;
  let portAt: number;
  switch (address.type) {
    case "ipv4":
      out = new Uint8Array(7);
      out[0] = ATYP_IPV4;
      out.set(parseIpv4(address.host), 1);
      portAt = 5;
      break;
    case "ipv6":
      out = new Uint8Array(19);
      out[0] = ATYP_IPV6;
      out.set(parseIpv6(address.host), 1);
      portAt = 17;
      break;
    case "domain": {
      const name = new TextEncoder().encode(address.host);
      if (name.length < 1 || name.length > 255) {
        throw new RangeError(
          `Invalid domain name "${address.host}": length must be 1 to 255 bytes`,
        );
      }
      out = new Uint8Array(4 + name.length);
      out[0] = ATYP_DOMAIN;
      out[1] = name.length;
      out.set(name, 2);
      portAt = 2 + name.length;
      break;
    }
  }
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 0xffff) {
    throw new RangeError(`Invalid port ${address.port}: expected 0 to 65535`);
  }
  out[portAt] = address.port >> 8;
  out[portAt + 1] = address.port & 0xff;
  return out;
}

/** Classifies a host string: IPv4 literal, IPv6 literal (brackets allowed) or domain name. */
export function addressFromHost(host: string, port: number): Address {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (tryParseIpv4(bare)) return { type: "ipv4", host: bare, port };
  if (tryParseIpv6(bare)) return { type: "ipv6", host: formatIpv6(tryParseIpv6(bare)!), port };
  return { type: "domain", host, port };
}

/** `host:port`, with IPv6 in brackets, for logs and errors. */
export function formatAddress(address: Address): string {
  return address.type === "ipv6"
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

function decodeDomain(bytes: Uint8Array): string {
  // Names are ASCII in practice; fatal decoding rejects bytes that are not UTF-8.
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    throw new ProtocolError("ERR_READ_ADDRESS", "Invalid domain name: not UTF-8", {
      cause: error,
    });
  }
}

export function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952 text form: lower case, longest run of two or more zero groups compressed. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

function tryParseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

function tryParseIpv6(text: string): Uint8Array | undefined {
  if (!text.includes(":") || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = tryParseIpv4(item);
        if (!v4) return undefined;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
        groups.push(parseInt(item, 16));
      }
    }
    return groups;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Parses a dotted IPv4 literal; throws `RangeError` when it is not one. */
export function parseIpv4(text: string): Uint8Array {
  const bytes = tryParseIpv4(text);
  if (!bytes) throw new RangeError(`Invalid IPv4 address "${text}"`);
  return bytes;
}

/** Parses an IPv6 literal (no brackets); throws `RangeError` when it is not one. */
export function parseIpv6(text: string): Uint8Array {
  const bytes = tryParseIpv6(text);
  if (!bytes) throw new RangeError(`Invalid IPv6 address "${text}"`);
  return bytes;
}
