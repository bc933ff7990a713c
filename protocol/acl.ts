/**
 * The ACL file grammar shared by shadowsocks-libev and shadowsocks-rust, read the way
 * ss-rust ≥ 1.23.5 reads it (NOTES-2 §16.2), with the choices of §16.5:
 *
 * ```
 * [proxy_all]  = [accept_all]    mode = BlackList (the default); the last mode header wins
 * [bypass_all] = [reject_all]    mode = WhiteList
 * [bypass_list] = [black_list]   rules that follow go to the bypass list (also before any header)
 * [proxy_list]  = [white_list]   rules that follow go to the proxy list
 * [outbound_block_list]          rules that follow go to the outbound block list
 * [outbound_allow_list]          rules that follow go to the outbound allow list
 * [outbound_allow_all]           outbound mode = BlackList (the default)
 * [outbound_block_all]           outbound mode = WhiteList
 * # text                         a comment only when '#' is the first character of the line
 * 10.0.0.0/8  2000::/8  1.2.3.4  IP rules; host bits are ignored (10.9.0.32/16 = 10.9.0.0/16)
 * |example.com                   exact name
 * ||example.com                  example.com and every name below it
 * (^|\.)example\.com$  ^a\.com$  regex shapes ss-rust rewrites into the two rules above
 * anything else                  a regex, lower-cased, searched (not anchored) in the name
 * ```
 *
 * Headers are exact, case-sensitive whole lines after trimming; any other `[...]` line is a regex
 * (a character class), as in both implementations. Deviations from ss-rust, all reported as
 * warnings: a whitespace-only line is skipped (ss-rust turns it into an empty regex that matches
 * every name); an invalid regex skips its line (ss-rust refuses the whole file). A rule holding
 * whitespace or `#` is kept whole (ss-rust has no inline comments) but warned about.
 *
 * Regexes are compiled as JavaScript regexes (no flags, so `\w` and `\d` are ASCII as with
 * ss-rust's `unicode(false)`). JavaScript syntax differs from Rust's `regex` and from PCRE: Rust's
 * `(?P<name>…)`, `(?i)` and `[[:alpha:]]` are errors or mean something else here.
 * @module
 */
import { parseIpv6 } from "./address.ts";

/**
 * Default size limit, in bytes (or UTF-16 code units for a string). The largest ACLs in use,
 * China-domain lists of about 100 000 `(^|\.)name\.cn$` lines, are 3 to 4 MiB.
 */
export const MAX_ACL_BYTES = 8 * 1024 * 1024;

/** Default limit on the number of rules (IP, name and regex rules together). */
export const MAX_ACL_RULES = 500_000;

/** An ACL file the user must fix: too large, or too many rules. */
export class AclError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AclError";
  }
}

/**
 * `BlackList`: everything not listed takes the permissive default (proxy, accept, allow);
 * `WhiteList`: everything not listed takes the restrictive one (bypass, reject, block).
 */
export type AclMode = "BlackList" | "WhiteList";

/** An IP address as a number: IPv4 as an unsigned 32-bit number, IPv6 as a 128-bit bigint. */
export type ParsedIp =
  | { readonly family: 4; readonly value: number }
  | { readonly family: 6; readonly value: bigint };

/** A parsed ACL file. Rules before any list header belong to `bypass`. */
export interface AclFile {
  /** Set by `[proxy_all]`/`[accept_all]` (BlackList) and `[bypass_all]`/`[reject_all]`. */
  readonly mode: AclMode;
  /** Set by `[outbound_allow_all]` (BlackList) and `[outbound_block_all]` (WhiteList). */
  readonly outboundMode: AclMode;
  /** `[bypass_list]` = `[black_list]`: direct on the local side, rejected clients on a server. */
  readonly bypass: AclRules;
  /** `[proxy_list]` = `[white_list]`: proxied on the local side, accepted clients on a server. */
  readonly proxy: AclRules;
  readonly outboundBlock: AclRules;
  readonly outboundAllow: AclRules;
  readonly ruleCount: number;
  /** One sentence per questionable line, starting with `Line N:`. */
  readonly warnings: readonly string[];
  /**
   * The text it was parsed from: the rules are class instances that do not survive a
   * `postMessage`, so a worker isolate parses this again (service/workers.ts).
   */
  readonly source: string;
}

/** Limits for {@linkcode parseAcl}. */
export interface AclParseOptions {
  /** Largest accepted input. Default {@linkcode MAX_ACL_BYTES}. */
  maxBytes?: number;
  /** Largest accepted number of rules. Default {@linkcode MAX_ACL_RULES}. */
  maxRules?: number;
}

/**
 * Sorted, merged, disjoint ranges of one address family. A lookup is a binary search over the
 * range starts: O(log n), about 13 comparisons for a China IP list of 8 000 ranges, where a
 * scan would compare against every CIDR. Overlapping ranges are merged when built. A prefix
 * trie would also work; sorted arrays are smaller and need no per-bit walk.
 */
class RangeSet<T extends number | bigint> {
  readonly #starts: T[] = [];
  readonly #ends: T[] = [];

  constructor(ranges: [T, T][]) {
    const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [start, end] of sorted) {
      const last = this.#ends.length - 1;
      if (last >= 0 && start <= this.#ends[last]!) {
        if (end > this.#ends[last]!) this.#ends[last] = end;
      } else {
        this.#starts.push(start);
        this.#ends.push(end);
      }
    }
  }

  get size(): number {
    return this.#starts.length;
  }

  has(value: T): boolean {
    const starts = this.#starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= value) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && value <= this.#ends[hi]!;
  }
}

/** `::ffff:0:0/96`, the IPv4-mapped IPv6 block. */
const V4_MAPPED = 0xffff_0000_0000n;

/** The raw material of one list, as {@linkcode parseAcl} collects it. */
export interface AclRulesInit {
  ipv4: [number, number][];
  ipv6: [bigint, bigint][];
  exact: Set<string>;
  subdomains: Set<string>;
  regexes: RegExp[];
}

/**
 * One list of an ACL file (bypass, proxy, outbound block or allow) and its matchers, built by
 * {@linkcode parseAcl}. Names given to {@linkcode AclRules.matchesName} must already be
 * lower-case ASCII without a trailing dot.
 */
export class AclRules {
  /** Names matched exactly (`|name`, `^name$`). */
  readonly exact: ReadonlySet<string>;
  /** Names matched with every name below them (`||name`, `(^|\.)name$`). */
  readonly subdomains: ReadonlySet<string>;
  /**
   * Lower-cased regexes, searched in the name and tried one by one (ss-rust builds one
   * `RegexSet`; JavaScript has none). Large lists rarely reach this path: their
   * `(^|\.)name$` lines become sub-domain rules, matched with one set lookup per label.
   */
  readonly regexes: readonly RegExp[];
  readonly #ipv4: RangeSet<number>;
  readonly #ipv6: RangeSet<bigint>;

  constructor(init: AclRulesInit) {
    this.#ipv4 = new RangeSet(init.ipv4);
    this.#ipv6 = new RangeSet(init.ipv6);
    this.exact = init.exact;
    this.subdomains = init.subdomains;
    this.regexes = init.regexes;
  }

  /** Whether the list has IP rules (a name target is resolved only against such a list). */
  get hasIpRules(): boolean {
    return this.#ipv4.size > 0 || this.#ipv6.size > 0;
  }

  get hasNameRules(): boolean {
    return this.exact.size > 0 || this.subdomains.size > 0 || this.regexes.length > 0;
  }

  /** Disjoint ranges after merging, per family: what a lookup searches. */
  get rangeCounts(): { ipv4: number; ipv6: number } {
    return { ipv4: this.#ipv4.size, ipv6: this.#ipv6.size };
  }

  /** Whether an address is in an IP rule, IPv4-mapped IPv6 counting as IPv4 and back (rust#1060). */
  matchesIp(ip: ParsedIp): boolean {
    if (ip.family === 4) {
      return this.#ipv4.has(ip.value) ||
        (this.#ipv6.size > 0 && this.#ipv6.has(V4_MAPPED | BigInt(ip.value)));
    }
    if (this.#ipv6.has(ip.value)) return true;
    return this.#ipv4.size > 0 && ip.value >> 32n === 0xffffn &&
      this.#ipv4.has(Number(ip.value & 0xffff_ffffn));
  }

  /** Whether a normalized name matches an exact, sub-domain or regex rule. */
  matchesName(name: string): boolean {
    if (this.exact.has(name) || this.subdomains.has(name)) return true;
    if (this.subdomains.size > 0) {
      for (let dot = name.indexOf("."); dot >= 0; dot = name.indexOf(".", dot + 1)) {
        if (this.subdomains.has(name.slice(dot + 1))) return true;
      }
    }
    for (const regex of this.regexes) {
      if (regex.test(name)) return true;
    }
    return false;
  }
}

/**
 * Parses an IPv4 (strict dotted decimal, no leading zeros, as Rust's `Ipv4Addr`) or IPv6 literal
 * (no brackets, no zone). Returns `undefined` for anything else.
 */
export function parseIp(text: string): ParsedIp | undefined {
  if (text.includes(":")) {
    if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = parseIpv6(text);
    } catch (error) {
      if (error instanceof RangeError) return undefined;
      throw error;
    }
    let value = 0n;
    for (const byte of bytes) value = (value << 8n) | BigInt(byte);
    return { family: 6, value };
  }
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return { family: 4, value };
}

type IpRule =
  | { family: 4; range: [number, number] }
  | { family: 6; range: [bigint, bigint] };

/** `addr` or `addr/len` as Rust's `IpNet`/`IpAddr` read them; the host bits of a CIDR are dropped. */
function parseIpRule(text: string): IpRule | undefined {
  const slash = text.indexOf("/");
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  let length = ip.family === 4 ? 32 : 128;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > length) return undefined;
    length = Number(lengthText);
  }
  if (ip.family === 4) {
    const size = 2 ** (32 - length);
    const start = ip.value - (ip.value % size);
    return { family: 4, range: [start, start + size - 1] };
  }
  const hostMask = (1n << BigInt(128 - length)) - 1n;
  const start = ip.value & ~hostMask;
  return { family: 6, range: [start, start | hostMask] };
}

const MODE_HEADERS: ReadonlyMap<string, ["mode" | "outboundMode", AclMode]> = new Map([
  ["[proxy_all]", ["mode", "BlackList"]],
  ["[accept_all]", ["mode", "BlackList"]],
  ["[bypass_all]", ["mode", "WhiteList"]],
  ["[reject_all]", ["mode", "WhiteList"]],
  ["[outbound_allow_all]", ["outboundMode", "BlackList"]],
  ["[outbound_block_all]", ["outboundMode", "WhiteList"]],
]);

type ListName = "bypass" | "proxy" | "outboundBlock" | "outboundAllow";

const LIST_HEADERS: ReadonlyMap<string, ListName> = new Map([
  ["[bypass_list]", "bypass"],
  ["[black_list]", "bypass"],
  ["[proxy_list]", "proxy"],
  ["[white_list]", "proxy"],
  ["[outbound_block_list]", "outboundBlock"],
  ["[outbound_allow_list]", "outboundAllow"],
]);

/**
 * Regex rules ss-rust stores as name rules instead (§16.2): `(^|\.)`, `(?:^|\.)`, `\.`, `^.*\.`
 * or `^.+\.` before escaped labels become a sub-domain rule; `^` before them an exact rule; a
 * final `$` is optional in both. Written without nested quantifiers, so no input backtracks.
 */
const SUBDOMAIN_SHAPE =
  /^(?:\((?:\?:)?\^\|\\\.\)|(?:\^\.[*+])?\\\.)([\w-]+(?:\\\.[\w-]+)*(?:\\\.)?)\$?$/;
const EXACT_SHAPE = /^\^([\w-]+(?:\\\.[\w-]+)*(?:\\\.)?)\$?$/;

/** Lines that look like an IP rule but did not parse: they would silently become regexes. */
const IP_LOOKALIKE = /^(?:\d+\.\d+\.\d+\.\d+|[0-9a-fA-F.]*:[0-9a-fA-F:.]*)(?:\/\d*)?$/;

/** Names are stored as ss-rust stores them: without trailing dots, lower-case. */
function cleanName(name: string): string {
  return name.replace(/\.+$/, "").toLowerCase();
}

/**
 * Parses the text of an ACL file. `source` may be the file's bytes (checked against the size
 * limit before decoding; bytes that are not UTF-8 end up in a non-ASCII line, skipped with a
 * warning). Throws {@linkcode AclError} when the input or its rule count exceeds the limits;
 * everything else questionable is a warning, never an exception.
 */
export function parseAcl(source: string | Uint8Array, options: AclParseOptions = {}): AclFile {
  const maxBytes = options.maxBytes ?? MAX_ACL_BYTES;
  const maxRules = options.maxRules ?? MAX_ACL_RULES;
  if (source.length > maxBytes) {
    throw new AclError(
      `ACL file too large: ${source.length} ${
        typeof source === "string" ? "characters" : "bytes"
      }, the limit is ${maxBytes}`,
    );
  }
  const text = typeof source === "string" ? source : new TextDecoder().decode(source);

  const lists: Record<ListName, AclRulesInit> = {
    bypass: emptyInit(),
    proxy: emptyInit(),
    outboundBlock: emptyInit(),
    outboundAllow: emptyInit(),
  };
  const modes: { mode: AclMode; outboundMode: AclMode } = {
    mode: "BlackList",
    outboundMode: "BlackList",
  };
  const warnings: string[] = [];
  let current = lists.bypass;
  let ruleCount = 0;

  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (let index = 0; index < lines.length; index++) {
    const number = index + 1;
    const warn = (message: string) => warnings.push(`Line ${number}: ${message}`);
    const raw = lines[index]!.replace(/\r$/, "");
    if (raw === "" || raw.startsWith("#")) continue;
    const line = raw.trim();
    if (line === "") {
      warn("whitespace-only line skipped (ss-rust would read it as a rule matching every name)");
      continue;
    }
    if (/[\u0080-\uffff]/.test(line)) {
      warn(`non-ASCII rule "${line}" skipped: write internationalized names as punycode`);
      continue;
    }
    const mode = MODE_HEADERS.get(line);
    if (mode) {
      modes[mode[0]] = mode[1];
      continue;
    }
    const list = LIST_HEADERS.get(line);
    if (list) {
      current = lists[list];
      continue;
    }

    if (++ruleCount > maxRules) {
      throw new AclError(
        `ACL file has too many rules: line ${number} exceeds the limit ${maxRules}`,
      );
    }
    if (/[\s#]/.test(line)) {
      warn(
        `rule "${line}" contains whitespace or "#": kept whole, as ss-rust does (no inline comments)`,
      );
    }
    if (line.startsWith("|")) {
      const tree = line.startsWith("||");
      const name = cleanName(line.slice(tree ? 2 : 1));
      if (name === "") {
        warn(`rule "${line}" names nothing: skipped`);
        ruleCount--;
      } else (tree ? current.subdomains : current.exact).add(name);
      continue;
    }
    const ip = parseIpRule(line);
    if (ip?.family === 4) {
      current.ipv4.push(ip.range);
      continue;
    }
    if (ip?.family === 6) {
      current.ipv6.push(ip.range);
      continue;
    }
    const subdomain = SUBDOMAIN_SHAPE.exec(line)?.[1];
    if (subdomain !== undefined) {
      current.subdomains.add(cleanName(subdomain.replaceAll("\\.", ".")));
      continue;
    }
    const exact = EXACT_SHAPE.exec(line)?.[1];
    if (exact !== undefined) {
      current.exact.add(cleanName(exact.replaceAll("\\.", ".")));
      continue;
    }

    if (IP_LOOKALIKE.test(line)) {
      warn(`rule "${line}" is not a valid IP address or CIDR: read as a regex`);
    } else if (/^\[[\w-]+\]$/.test(line)) {
      warn(`unknown section "${line}": read as a regex (a character class), as ss-rust does`);
    }
    const escape = /\\[A-Z]/.exec(line);
    if (escape) {
      warn(
        `regex "${line}" is lower-cased as ss-rust does, which turns "${escape[0]}" into "${
          escape[0].toLowerCase()
        }"`,
      );
    }
    try {
      current.regexes.push(new RegExp(line.toLowerCase()));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      warn(`invalid regex "${line}" skipped: ${error.message}`);
      ruleCount--;
    }
  }

  return {
    mode: modes.mode,
    outboundMode: modes.outboundMode,
    bypass: new AclRules(lists.bypass),
    proxy: new AclRules(lists.proxy),
    outboundBlock: new AclRules(lists.outboundBlock),
    outboundAllow: new AclRules(lists.outboundAllow),
    ruleCount,
    warnings,
    source: text,
  };
}

function emptyInit(): AclRulesInit {
  return { ipv4: [], ipv6: [], exact: new Set(), subdomains: new Set(), regexes: [] };
}
