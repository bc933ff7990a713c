/**
 * Self-test of a client's first TCP segment against the Great Firewall's published exemption
 * rules for fully encrypted traffic (Wu et al., "How the Great Firewall of China Detects and
 * Blocks Fully Encrypted Traffic", USENIX Security 2023, Algorithm 1). The GFW blocked a
 * connection whose first payload looked random and matched none of these rules; an Outline
 * connection prefix exists to make a Shadowsocks first packet match one. This module tells
 * whether it does, and why, so a prefix can be checked before it is relied on.
 *
 * ```
 * Ex1  set bits per byte <= 3.4 or >= 4.6         5*bits <= 17*len || 5*bits >= 23*len
 * Ex2  the first 6 bytes printable                printable = 0x20..0x7e
 * Ex3  more than half of the bytes printable
 * Ex4  a run of more than 20 printable bytes
 * Ex5  TLS record header [16-17] 03 [00-09], or starts with "GET ", "PUT ", "POST ", "HEAD "
 * ```
 *
 * Ex5 follows the paper (third byte 0x00..0x09); the artifact's detect.py also accepts
 * 0x0a..0x0f, which nothing measured, so those count as not exempt here. The rules are
 * undefined for an empty payload: it is reported as "no data" (`len: 0`), never exempt.
 * Historical: the GFW stopped this blocking in March 2023; other censors use other signals.
 * @module
 */

/** The five exemption rules, in the paper's order. */
export type FetRule = "Ex1" | "Ex2" | "Ex3" | "Ex4" | "Ex5";

/** What `fetCheck()` found. With `len: 0` (no data) every statistic is 0. */
export interface FetResult {
  /** True when at least one rule holds: the GFW would not have blocked this payload. */
  exempt: boolean;
  /** The rules that hold, in order Ex1..Ex5. */
  rules: FetRule[];
  /** Set bits per byte (0 for no data). */
  popcountAvg: number;
  /** Set bits in the whole payload. */
  setBits: number;
  /** Printable bytes before the first non-printable one. */
  leadingPrintable: number;
  /** Printable bytes divided by `len` (0 for no data). */
  printableFraction: number;
  /** The longest run of consecutive printable bytes. */
  longestRun: number;
  /** Payload length in bytes; 0 means there was no data to judge. */
  len: number;
}

const HTTP_METHODS = ["GET ", "PUT ", "POST ", "HEAD "].map((text) =>
  Uint8Array.from(text, (char) => char.charCodeAt(0))
);

/** Applies Ex1..Ex5 to the first payload a client sends (prefix, salt, first chunk, …). */
export function fetCheck(firstPacket: Uint8Array): FetResult {
  const len = firstPacket.length;
  let setBits = 0;
  let printable = 0;
  let run = 0;
  let longestRun = 0;
  let leadingPrintable = -1;
  for (let i = 0; i < len; i++) {
    const byte = firstPacket[i]!;
    setBits += popcount(byte);
    if (isPrintable(byte)) {
      printable++;
      run++;
      if (run > longestRun) longestRun = run;
    } else {
      run = 0;
      if (leadingPrintable === -1) leadingPrintable = i;
    }
  }
  if (leadingPrintable === -1) leadingPrintable = len;

  const rules: FetRule[] = [];
  if (len > 0) {
    if (5 * setBits <= 17 * len || 5 * setBits >= 23 * len) rules.push("Ex1");
    if (leadingPrintable >= 6) rules.push("Ex2");
    if (2 * printable > len) rules.push("Ex3");
    if (longestRun > 20) rules.push("Ex4");
    if (looksLikeTls(firstPacket) || looksLikeHttp(firstPacket)) rules.push("Ex5");
  }
  return {
    exempt: rules.length > 0,
    rules,
    popcountAvg: len === 0 ? 0 : setBits / len,
    setBits,
    leadingPrintable,
    printableFraction: len === 0 ? 0 : printable / len,
    longestRun,
    len,
  };
}

/**
 * One plain-English line for logs and the self-test command, e.g. `exempt by Ex5 (looks like
 * a TLS record header)` or `not exempt: 4.02 bits set per byte, 0 leading printable bytes, 38%
 * printable, longest printable run 3`.
 */
export function describeFet(result: FetResult): string {
  if (result.len === 0) return "no data: the first packet is empty, so the rules do not apply";
  if (!result.exempt) {
    return `not exempt: ${result.popcountAvg.toFixed(2)} bits set per byte, ` +
      `${result.leadingPrintable} leading printable bytes, ${percent(result)} printable, ` +
      `longest printable run ${result.longestRun}`;
  }
  const reasons = result.rules.map((rule) => `${rule} (${reason(rule, result)})`);
  return `exempt by ${reasons.join(" and ")}`;
}

function reason(rule: FetRule, result: FetResult): string {
  switch (rule) {
    case "Ex1":
      return `${result.popcountAvg.toFixed(2)} bits set per byte, at most 3.4 or at least 4.6`;
    case "Ex2":
      return `the first ${result.leadingPrintable} bytes are printable`;
    case "Ex3":
      return `${percent(result)} of the bytes are printable`;
    case "Ex4":
      return `a run of ${result.longestRun} printable bytes`;
    case "Ex5":
      // A TLS header starts with a non-printable byte; an HTTP method with 4+ printable ones.
      return result.leadingPrintable === 0
        ? "looks like a TLS record header"
        : "looks like an HTTP request line";
  }
}

function percent(result: FetResult): string {
  return `${Math.round(result.printableFraction * 100)}%`;
}

function isPrintable(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e;
}

function popcount(byte: number): number {
  let count = 0;
  for (let b = byte; b !== 0; b &= b - 1) count++;
  return count;
}

/** Paper §4.3: `[\x16-\x17]\x03[\x00-\x09]` (handshake or application data, SSL 3.0/TLS). */
function looksLikeTls(bytes: Uint8Array): boolean {
  const [type, major, minor] = bytes;
  return (type === 0x16 || type === 0x17) && major === 0x03 && minor !== undefined &&
    minor <= 0x09;
}

function looksLikeHttp(bytes: Uint8Array): boolean {
  return HTTP_METHODS.some((method) =>
    bytes.length >= method.length && method.every((byte, i) => bytes[i] === byte)
  );
}
