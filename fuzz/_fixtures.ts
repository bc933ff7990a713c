/**
 * Constants and byte helpers the target modules share: fixed keys, salts and a pinned clock,
 * so that seeds are the same bytes on every run (a finding's seed and iteration reproduce it)
 * and 2022 timestamps stay inside their ±30 s window however long a run takes.
 * @module
 */
import { concatBytes } from "../crypto/bytes.ts";
import type { Address } from "../protocol/address.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The wall clock every 2022 target runs at: 2025-01-01T00:00:00Z. */
export const FUZZ_NOW_MS = Date.UTC(2025, 0, 1);
/** {@linkcode FUZZ_NOW_MS} in Unix seconds, as 2022 headers carry it. */
export const FUZZ_NOW_S = FUZZ_NOW_MS / 1000;

/** A pinned clock for `now` options. */
export function fuzzNow(): number {
  return FUZZ_NOW_MS;
}

/** Targets the seeds ask for: each address type, edge ports, the longest name. */
export const ADDRESSES: readonly Address[] = [
  { type: "ipv4", host: "1.2.3.4", port: 80 },
  { type: "ipv4", host: "0.0.0.0", port: 0 },
  { type: "ipv4", host: "255.255.255.255", port: 65535 },
  { type: "ipv6", host: "2001:db8::1", port: 8080 },
  { type: "ipv6", host: "::ffff:102:304", port: 443 },
  { type: "domain", host: "example.com", port: 443 },
  { type: "domain", host: "a", port: 1 },
  {
    type: "domain",
    host: `${"x".repeat(63)}.${"y".repeat(63)}.${"z".repeat(63)}.${"w".repeat(63)}`,
    port: 53,
  },
  { type: "domain", host: "bücher.example", port: 80 },
];

/** A few first payloads: none, a request line, a TLS-looking record, binary. */
export const PAYLOADS: readonly Uint8Array[] = [
  new Uint8Array(0),
  bytesOf("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
  Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5),
  Uint8Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff),
];

/**
 * UTF-8 edge cases for fields decoded as text (domain names, user names): a byte-order mark
 * (which a default `TextDecoder` silently drops), an overlong NUL, a lone surrogate, a code
 * point past U+10FFFF, a stray continuation byte, U+FFFD and a right-to-left override.
 */
export const UTF8_EDGES: readonly Uint8Array[] = [
  Uint8Array.of(0xef, 0xbb, 0xbf),
  Uint8Array.of(0xc0, 0x80),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  Uint8Array.of(0x80),
  Uint8Array.of(0xef, 0xbf, 0xbd),
  Uint8Array.of(0xe2, 0x80, 0xae),
];

/** `n` bytes counting up from `start`: fixed salts and keys. */
export function counting(n: number, start = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

/** Standard base64 of `n` counting bytes: a fixed 2022 PSK. */
export function psk(n: number, start = 0): string {
  return btoa(String.fromCharCode(...counting(n, start)));
}

/** UTF-8 bytes of `text`. */
export function bytesOf(text: string): Uint8Array {
  return encoder.encode(text);
}

/** One byte per character; throws `RangeError` for a character above U+00FF. */
export function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => {
    const code = char.charCodeAt(0);
    if (code > 0xff) throw new RangeError(`Invalid Latin-1 token "${text}"`);
    return code;
  });
}

/** `bytes` as text, the way our services decode a datagram or a file (invalid → U+FFFD). */
export function textOf(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** One buffer from several. */
export const join = concatBytes;

/** Big-endian u16. */
export function u16(value: number): Uint8Array {
  return Uint8Array.of(value >> 8, value & 0xff);
}
