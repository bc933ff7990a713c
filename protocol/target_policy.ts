/**
 * Which target addresses the server may connect to. By default it refuses loopback, private,
 * link-local, unspecified and other non-public ranges, so the server cannot be used to reach
 * the network it runs in (SSRF).
 * @module
 */
import { parseIpv4, parseIpv6 } from "./address.ts";

/** True when `ip` (an IPv4 or IPv6 literal) is not a public unicast address. */
export function isForbiddenIp(ip: string): boolean {
  if (ip.includes(":")) return isForbiddenIpv6(parseIpv6(ip));
  return isForbiddenIpv4(parseIpv4(ip));
}

function isForbiddenIpv4(b: Uint8Array): boolean {
  const [a, c] = [b[0]!, b[1]!];
  return a === 0 || // "this network", unspecified
    a === 10 || // private
    a === 127 || // loopback
    (a === 100 && c >= 64 && c <= 127) || // carrier-grade NAT
    (a === 169 && c === 254) || // link-local
    (a === 172 && c >= 16 && c <= 31) || // private
    (a === 192 && c === 168) || // private
    (a === 192 && c === 0 && b[2] === 0) || // IETF protocol assignments
    (a === 198 && (c === 18 || c === 19)) || // benchmarking
    a >= 224; // multicast, reserved, broadcast
}

function isForbiddenIpv6(b: Uint8Array): boolean {
  const isZeroPrefix = (n: number) => b.subarray(0, n).every((x) => x === 0);
  if (isZeroPrefix(15) && (b[15] === 0 || b[15] === 1)) return true; // :: and ::1
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d): judge the embedded IPv4.
  if (isZeroPrefix(10) && b[10] === 0xff && b[11] === 0xff) return isForbiddenIpv4(b.subarray(12));
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    return isForbiddenIpv4(b.subarray(12));
  }
  if ((b[0]! & 0xfe) === 0xfc) return true; // unique local fc00::/7
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return true; // link-local fe80::/10
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return true; // site-local fec0::/10
  if (b[0] === 0xff) return true; // multicast
  return false;
}
