/**
 * A realistic TLS 1.3 ClientHello (RFC 8446 §4.1.2), for `ssdeno check`: sent through a
 * Shadowsocks tunnel to a target on port 443, any TLS answer (a ServerHello or an alert) proves
 * the whole path works. We never finish the handshake, so nothing here keeps key material: the
 * key share is 32 random bytes, which is a valid X25519 public key (RFC 7748 §5 accepts any).
 *
 * ```
 * record     type 0x16, legacy version 0x0301, u16 length
 * handshake  type 0x01 (ClientHello), u24 length
 * body       legacy_version 0x0303, random[32], session_id<0..32>, cipher_suites<2..2^16-2>,
 *            compression_methods<1..2^8-1>, extensions<8..2^16-1>
 * ```
 * @module
 */
import { addressFromHost } from "./address.ts";

/** TLS 1.3 suites first, then the TLS 1.2 ECDHE AEAD suites browsers still offer. */
const CIPHER_SUITES = [
  0x1301, // TLS_AES_128_GCM_SHA256
  0x1302, // TLS_AES_256_GCM_SHA384
  0x1303, // TLS_CHACHA20_POLY1305_SHA256
  0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
  0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
];

const GROUP_X25519 = 0x001d;
const SUPPORTED_GROUPS = [GROUP_X25519, 0x0017, /* secp256r1 */ 0x0018 /* secp384r1 */];

const SIGNATURE_ALGORITHMS = [
  0x0403, // ecdsa_secp256r1_sha256
  0x0804, // rsa_pss_rsae_sha256
  0x0401, // rsa_pkcs1_sha256
  0x0503, // ecdsa_secp384r1_sha384
  0x0805, // rsa_pss_rsae_sha384
  0x0501, // rsa_pkcs1_sha384
  0x0806, // rsa_pss_rsae_sha512
  0x0601, // rsa_pkcs1_sha512
];

const EXT_SERVER_NAME = 0x0000;
const EXT_SUPPORTED_GROUPS = 0x000a;
const EXT_EC_POINT_FORMATS = 0x000b;
const EXT_SIGNATURE_ALGORITHMS = 0x000d;
const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const EXT_PSK_KEY_EXCHANGE_MODES = 0x002d;
const EXT_KEY_SHARE = 0x0033;

const CONTENT_HANDSHAKE = 0x16;
const CONTENT_ALERT = 0x15;
const HANDSHAKE_CLIENT_HELLO = 0x01;

/** RFC 1035 caps a name at 255 bytes; anything longer is not something to resolve or send. */
const MAX_SERVER_NAME = 255;

function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function u16(value: number): Uint8Array {
  return Uint8Array.of(value >> 8, value & 0xff);
}

/** A vector with a `width`-byte big-endian length prefix (RFC 8446 §3.4). */
function vector(width: 1 | 2 | 3, ...parts: Uint8Array[]): Uint8Array {
  const body = concat(parts);
  if (body.length >= 2 ** (8 * width)) {
    throw new RangeError(`TLS vector of ${body.length} bytes overflows a ${width}-byte length`);
  }
  const prefix = new Uint8Array(width);
  for (let i = 0, n = body.length; i < width; i++, n = Math.floor(n / 256)) {
    prefix[width - 1 - i] = n & 0xff;
  }
  return concat([prefix, body]);
}

function u16List(values: readonly number[]): Uint8Array {
  return concat(values.map(u16));
}

function extension(type: number, ...data: Uint8Array[]): Uint8Array {
  return concat([u16(type), vector(2, ...data)]);
}

/** Takes exactly `n` bytes from the caller's source, so a short test stub fails loudly. */
function take(random: (n: number) => Uint8Array, n: number): Uint8Array {
  const bytes = random(n);
  if (bytes.length !== n) throw new RangeError(`random(${n}) returned ${bytes.length} bytes`);
  return bytes;
}

/**
 * Whether `serverName` goes into SNI: RFC 6066 §3 forbids IP literals there, so IPv4, IPv6
 * (bracketed or not) and anything with a `:` (e.g. a zoned `fe80::1%eth0`) are left out.
 */
function isDnsName(serverName: string): boolean {
  return !serverName.includes(":") && addressFromHost(serverName, 443).type === "domain";
}

/**
 * One TLS record holding a ClientHello for `serverName`, shaped like a current browser's so
 * that a real server answers it. SNI is sent only for a DNS name, without a trailing dot
 * (RFC 6066 §3). `random(n)` supplies the client random, session id and key share, in that
 * order; pass a deterministic one in tests.
 *
 * Throws `RangeError` for an empty name, one longer than 255 bytes, or one with characters
 * outside printable ASCII (callers convert IDNs to punycode first).
 */
export function buildClientHello(
  serverName: string,
  random: (n: number) => Uint8Array = defaultRandom,
): Uint8Array {
  if (serverName === "" || serverName.length > MAX_SERVER_NAME) {
    throw new RangeError(
      `TLS server name must be 1 to ${MAX_SERVER_NAME} bytes, got ${serverName.length}`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(serverName)) {
    throw new RangeError(
      `TLS server name "${serverName}" must be printable ASCII (use punycode for IDNs)`,
    );
  }
  const clientRandom = take(random, 32);
  // A 32-byte legacy session id makes middleboxes treat this as a TLS 1.2 resumption
  // (RFC 8446 §4.1.2, "middlebox compatibility mode"), as browsers do.
  const sessionId = take(random, 32);
  const keyShare = take(random, 32);

  const extensions: Uint8Array[] = [];
  const hostName = serverName.endsWith(".") ? serverName.slice(0, -1) : serverName;
  if (hostName !== "" && isDnsName(hostName)) {
    const name = new TextEncoder().encode(hostName);
    // ServerNameList<1..2^16-1> of { NameType host_name(0), HostName<1..2^16-1> }.
    extensions.push(extension(EXT_SERVER_NAME, vector(2, Uint8Array.of(0), vector(2, name))));
  }
  extensions.push(
    extension(EXT_SUPPORTED_GROUPS, vector(2, u16List(SUPPORTED_GROUPS))),
    extension(EXT_EC_POINT_FORMATS, vector(1, Uint8Array.of(0 /* uncompressed */))),
    extension(EXT_SIGNATURE_ALGORITHMS, vector(2, u16List(SIGNATURE_ALGORITHMS))),
    extension(EXT_SUPPORTED_VERSIONS, vector(1, u16List([0x0304, 0x0303]))),
    extension(EXT_PSK_KEY_EXCHANGE_MODES, vector(1, Uint8Array.of(1 /* psk_dhe_ke */))),
    // client_shares<0..2^16-1> of { NamedGroup group, opaque key_exchange<1..2^16-1> }.
    extension(EXT_KEY_SHARE, vector(2, u16(GROUP_X25519), vector(2, keyShare))),
    // ProtocolNameList<2..2^16-1> of ProtocolName<1..2^8-1>.
    extension(EXT_ALPN, vector(2, vector(1, new TextEncoder().encode("http/1.1")))),
  );

  const body = concat([
    u16(0x0303), // legacy_version: TLS 1.2; the real offer is in supported_versions
    clientRandom,
    vector(1, sessionId),
    vector(2, u16List(CIPHER_SUITES)),
    vector(1, Uint8Array.of(0 /* null compression */)),
    vector(2, ...extensions),
  ]);
  const handshake = concat([Uint8Array.of(HANDSHAKE_CLIENT_HELLO), vector(3, body)]);
  // Record version 0x0301 for the first record, as RFC 8446 §5.1 recommends for compatibility.
  return concat([Uint8Array.of(CONTENT_HANDSHAKE, 0x03, 0x01), vector(2, handshake)]);
}

/**
 * What a server's first bytes are, from the record header (RFC 8446 §5.1): `"handshake"` (a
 * ServerHello, or a TLS 1.2 server's), `"alert"` (the server speaks TLS but refused us), or
 * `"other"` (too short, or not TLS at all — e.g. an HTTP error page or a proxy's own reply).
 */
export function tlsRecordKind(firstBytes: Uint8Array): "handshake" | "alert" | "other" {
  if (firstBytes.length < 2 || firstBytes[1] !== 0x03) return "other";
  if (firstBytes[0] === CONTENT_HANDSHAKE) return "handshake";
  if (firstBytes[0] === CONTENT_ALERT) return "alert";
  return "other";
}
