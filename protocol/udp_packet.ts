/**
 * UDP framing: the AEAD-2017 Shadowsocks packet (SIP004/SIP007), the legacy stream-cipher packet,
 * and the SOCKS5 UDP request header (RFC 1928 §7). Pure code: no sockets here.
 *
 * Shadowsocks packet, the same layout both ways:
 *
 * ```
 * +-----------+---------------------------------------------------+-----------+
 * | salt      | seal(subkey(salt), nonce = 0, address || payload) | tag (16)  |
 * | saltSize  | address header (7, 19 or 4 + L bytes) + payload   |           |
 * +-----------+---------------------------------------------------+-----------+
 *
 * stream ciphers (insecure, NOTES §5.1):
 * +-----------+---------------------------------------------------+
 * | IV        | encrypt(masterKey, IV, address || payload)        |
 * | saltSize  | (no tag; `table` has no IV either)                |
 * +-----------+---------------------------------------------------+
 * ```
 *
 * Client → server the address is the target; server → client it is the source of the reply.
 * The all-zero nonce is safe because every packet carries a fresh random salt, hence a fresh
 * subkey; a stream packet's keystream starts afresh at its own random IV. With the `none`
 * method the packet is just `address || payload`.
 *
 * SOCKS5 UDP datagram between an application and the local side:
 *
 * ```
 * +---------+------+---------------------------+---------+
 * | RSV     | FRAG | address (ATYP ADDR PORT)  | DATA    |
 * | 2 bytes | 1    | var                       | rest    |
 * +---------+------+---------------------------+---------+
 * ```
 *
 * Dropping the first three bytes of a SOCKS5 datagram gives the Shadowsocks plaintext, and
 * prefixing `00 00 00` to a decrypted Shadowsocks plaintext gives the SOCKS5 datagram.
 * @module
 */
import { fillPrefixedSalt } from "./outline_prefix.ts";
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { sessionSubkeyView } from "../crypto/kdf.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { createStreamCipher } from "../crypto/stream_cipher.ts";
import { type Address, decodeAddress, encodeAddress, encodedAddressLength } from "./address.ts";
import { ProtocolError } from "./errors.ts";

/** Largest UDP payload over IPv4 (65535 − 8 UDP − 20 IP header bytes). */
export const MAX_UDP_PAYLOAD = 65_507;
/** Bytes before the address in a SOCKS5 UDP datagram: RSV RSV FRAG. */
export const SOCKS_UDP_PREFIX_LENGTH = 3;

/**
 * True when this module can frame UDP for `method`: AEAD-2017, the stream ciphers and `none`.
 * The 2022 edition (SIP022) frames UDP differently: see aead2022_udp.ts.
 */
export function supportsUdp(method: MethodInfo): boolean {
  return method.family === "aead" || method.family === "stream" || method.family === "none";
}

/** Bytes a Shadowsocks packet adds around its plaintext: salt and tag, or the IV. */
export function udpPacketOverhead(method: MethodInfo): number {
  if (method.family === "aead") return method.saltSize + method.tagSize;
  return method.family === "stream" ? method.saltSize : 0;
}

/**
 * Seals `plaintext` (address header followed by payload) into one packet. With `out` (at least
 * `plaintext.length + udpPacketOverhead(method)` bytes, not overlapping `plaintext`) the packet
 * is written there and a view of it is returned, so a relay loop can reuse one buffer; otherwise
 * a new array is returned.
 */
export function sealUdpPacket(
  method: MethodInfo,
  masterKey: Uint8Array,
  plaintext: Uint8Array,
  out?: Uint8Array,
  saltPrefix?: Uint8Array,
): Uint8Array {
  assertUdpMethod(method);
  const length = plaintext.length + udpPacketOverhead(method);
  const packet = out ? out.subarray(0, length) : new Uint8Array(length);
  if (packet.length < length) {
    throw new RangeError(`Output buffer too small: expected ${length} bytes, got ${packet.length}`);
  }
  if (method.family === "stream") {
    const iv = fillPrefixedSalt(packet.subarray(0, method.saltSize), saltPrefix);
    using cipher = createStreamCipher(method.stream!, masterKey, iv);
    cipher.updateInto(plaintext, packet.subarray(method.saltSize));
    return packet;
  }
  if (method.family !== "aead") {
    packet.set(plaintext);
    return packet;
  }
  const salt = fillPrefixedSalt(packet.subarray(0, method.saltSize), saltPrefix);
  // A fresh cipher's nonce counter is zero, which is the nonce every UDP packet uses.
  const cipher = new AeadCipher(method.algorithm!, sessionSubkeyView(masterKey, salt));
  cipher.sealInto(plaintext, packet.subarray(method.saltSize));
  return packet;
}

/**
 * Opens one packet and returns its plaintext (address header followed by payload), never a view
 * of `packet`. Throws `ProtocolError("ERR_CIPHER")` when the packet is too short to hold a salt,
 * a tag and at least one byte, or when the tag does not verify. A stream-cipher packet cannot
 * fail here (nothing authenticates it): a wrong key shows as a bad address header.
 */
export function openUdpPacket(
  method: MethodInfo,
  masterKey: Uint8Array,
  packet: Uint8Array,
): Uint8Array {
  assertUdpMethod(method);
  const minimum = udpPacketOverhead(method) + 1;
  if (packet.length < minimum) {
    throw new ProtocolError(
      "ERR_CIPHER",
      `UDP packet too short: expected at least ${minimum} bytes, got ${packet.length}`,
    );
  }
  if (method.family === "stream") {
    const size = method.saltSize;
    using cipher = createStreamCipher(method.stream!, masterKey, packet.subarray(0, size), {
      decrypt: true,
    });
    const plaintext = new Uint8Array(packet.length - size);
    cipher.updateInto(packet.subarray(size), plaintext);
    return plaintext;
  }
  if (method.family !== "aead") return packet.slice();
  const salt = packet.subarray(0, method.saltSize);
  const cipher = new AeadCipher(method.algorithm!, sessionSubkeyView(masterKey, salt));
  return cipher.open(packet.subarray(method.saltSize));
}

/** Throws `RangeError` naming the method when `supportsUdp(method)` is false. */
export function assertUdpMethod(method: MethodInfo): void {
  if (!supportsUdp(method)) {
    throw new RangeError(
      `Unsupported method "${method.name}" for UDP: expected an AEAD-2017 or stream one`,
    );
  }
}

/** A decrypted Shadowsocks UDP plaintext, split. */
export interface UdpPlaintext {
  readonly address: Address;
  /** A view of the plaintext after the address header. */
  readonly payload: Uint8Array;
}

/**
 * Splits a Shadowsocks UDP plaintext into address and payload. A datagram is complete, so an
 * address cut short is an error here: `ProtocolError("ERR_READ_ADDRESS")`.
 */
export function decodeUdpPlaintext(plaintext: Uint8Array): UdpPlaintext {
  const decoded = decodeAddress(plaintext);
  if (!decoded) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `UDP address header truncated: got ${plaintext.length} bytes`,
    );
  }
  return { address: decoded.address, payload: plaintext.subarray(decoded.length) };
}

/**
 * Opens one packet and splits it: `openUdpPacket` then `decodeUdpPlaintext`. For a stream
 * method, whose packets nothing authenticates, an address header that does not parse is the sign
 * of a wrong key or junk and is reported as `ERR_CIPHER`, as a tag mismatch is for AEAD.
 */
export function openUdpRequest(
  method: MethodInfo,
  masterKey: Uint8Array,
  packet: Uint8Array,
): UdpPlaintext {
  const plaintext = openUdpPacket(method, masterKey, packet);
  if (method.family !== "stream") return decodeUdpPlaintext(plaintext);
  try {
    return decodeUdpPlaintext(plaintext);
  } catch (error) {
    if (!(error instanceof ProtocolError) || error.code !== "ERR_READ_ADDRESS") throw error;
    throw new ProtocolError("ERR_CIPHER", `Bad address header: ${error.message}`, {
      cause: error,
    });
  }
}

/** Encodes a Shadowsocks UDP plaintext: `address || payload`. */
export function encodeUdpPlaintext(address: Address, payload: Uint8Array): Uint8Array {
  const header = encodeAddress(address);
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

/** A decoded SOCKS5 UDP request header. */
export interface SocksUdpHeader {
  /** FRAG: 0 for a standalone datagram; anything else is a fragment, which we drop. */
  readonly fragment: number;
  readonly address: Address;
  /** Header length: RSV RSV FRAG plus the address; DATA starts here. */
  readonly length: number;
}

/**
 * Decodes the header of a SOCKS5 UDP datagram. The RSV bytes are not checked (clients differ).
 * Throws `ProtocolError("ERR_READ_ADDRESS")` when the header is truncated or malformed.
 */
export function decodeSocksUdpHeader(datagram: Uint8Array): SocksUdpHeader {
  if (datagram.length < SOCKS_UDP_PREFIX_LENGTH + 1) {
    throw new ProtocolError(
      "ERR_READ_ADDRESS",
      `SOCKS5 UDP header truncated: got ${datagram.length} bytes`,
    );
  }
  const { address, payload } = decodeUdpPlaintext(datagram.subarray(SOCKS_UDP_PREFIX_LENGTH));
  return {
    fragment: datagram[2]!,
    address,
    length: datagram.length - payload.length,
  };
}

/** Encodes a SOCKS5 UDP header (RSV 0, FRAG 0) for `address`. */
export function encodeSocksUdpHeader(address: Address): Uint8Array {
  const encoded = encodeAddress(address);
  const out = new Uint8Array(SOCKS_UDP_PREFIX_LENGTH + encoded.length);
  out.set(encoded, SOCKS_UDP_PREFIX_LENGTH);
  return out;
}

/** Number of bytes `encodeSocksUdpHeader(address)` produces. */
export function socksUdpHeaderLength(address: Address): number {
  return SOCKS_UDP_PREFIX_LENGTH + encodedAddressLength(address);
}
