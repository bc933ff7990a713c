/**
 * ACL decisions with the semantics of shadowsocks-rust ≥ 1.23.5 (NOTES-2 §16.3):
 *
 * ```
 * local, IP target:    bypass list → bypass; proxy list → proxy; else default
 * local, name target:  proxy-list names → proxy; bypass-list names → bypass   (names: proxy first)
 *                      L = BlackList ? bypass list : proxy list; L has no IP rules → default
 *                      resolve (failure → default); any address in L → L's verdict; else default
 *                      default: BlackList → proxy, WhiteList → bypass
 * server, client:      BlackList: blocked iff in bypass (black) list
 *                      WhiteList: blocked iff not in proxy (white) list
 * server, outbound:    the same shape over the outbound block / allow lists and outbound mode;
 *                      default: allow, or block after [outbound_block_all]
 * ```
 *
 * Resolution is injected, so this module does no I/O. A name target that is an IP literal
 * (SOCKS5 ATYP 3 carrying `1.2.3.4`) is checked as that IP, not resolved (ours).
 * @module
 */
import type { Address } from "../protocol/address.ts";
import {
  type AclFile,
  type AclMode,
  type AclRules,
  type ParsedIp,
  parseIp,
} from "../protocol/acl.ts";

/** Resolves a name to IP literals; rejects (or returns nothing) when it cannot. */
export type Resolve = (name: string) => Promise<readonly string[]>;

/** Local side: connect through the server, or directly. */
export type TargetDecision = "proxy" | "bypass";

/** Server side: refuse the target, or relay to it. */
export type OutboundDecision = "block" | "allow";

/**
 * The name form ACL rules are matched against, as ss-rust prepares it: punycode for a non-ASCII
 * name (via the URL parser's IDNA; left as is when that fails), lower-case, one trailing dot
 * removed.
 */
export function normalizeName(name: string): string {
  let ascii = name;
  // Only names the URL parser cannot read as something else (userinfo, path, port, IPv6).
  if (/[\u0080-\uffff]/.test(name) && !/[\s/?#@:\\[\]%]/.test(name)) {
    try {
      ascii = new URL(`http://${name}`).hostname;
    } catch (error) {
      // Not a valid IDN: match the name as given, like ss-rust's fallback.
      if (!(error instanceof TypeError)) throw error;
    }
  }
  ascii = ascii.toLowerCase();
  return ascii.endsWith(".") ? ascii.slice(0, -1) : ascii;
}

/** The IP in a host (brackets and an IPv6 zone allowed), or `undefined` for a real name. */
function ipOf(host: string): ParsedIp | undefined {
  return parseIp(host.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, ""));
}

/** Built once per ACL file (and again on reload); every method is safe to call concurrently. */
export class AccessControl {
  readonly #acl: AclFile;

  constructor(acl: AclFile) {
    this.#acl = acl;
  }

  get mode(): AclMode {
    return this.#acl.mode;
  }

  get outboundMode(): AclMode {
    return this.#acl.outboundMode;
  }

  /** Whether `checkTarget` may call its resolver: the mode's list has IP rules. */
  get resolvesTargets(): boolean {
    return this.#localList.hasIpRules;
  }

  /** Whether `checkOutbound` may call its resolver: the outbound mode's list has IP rules. */
  get resolvesOutbound(): boolean {
    return this.#outboundList.hasIpRules;
  }

  /** `false` when `checkOutbound` always allows, so a server can skip calling it. */
  get checksOutbound(): boolean {
    const { outboundMode, outboundBlock } = this.#acl;
    return outboundMode === "WhiteList" || outboundBlock.hasIpRules || outboundBlock.hasNameRules;
  }

  /** `false` when `isClientBlocked` always returns `false`. */
  get checksClients(): boolean {
    return this.#acl.mode === "WhiteList" || this.#acl.bypass.hasIpRules;
  }

  /** Local side: whether to proxy or bypass a target; resolves a name only when it must. */
  async checkTarget(target: Address, resolve: Resolve): Promise<TargetDecision> {
    const { bypass, proxy, mode } = this.#acl;
    const fallback: TargetDecision = mode === "BlackList" ? "proxy" : "bypass";
    const ip = ipOf(target.host);
    if (ip) {
      if (bypass.matchesIp(ip)) return "bypass";
      if (proxy.matchesIp(ip)) return "proxy";
      return fallback;
    }
    if (target.type !== "domain") return fallback; // an unparseable IP matches no rule
    const name = normalizeName(target.host);
    if (proxy.matchesName(name)) return "proxy";
    if (bypass.matchesName(name)) return "bypass";
    const list = this.#localList;
    if (!list.hasIpRules) return fallback;
    const hit = await anyResolvedIn(list, target.host, resolve);
    return hit ? (list === bypass ? "bypass" : "proxy") : fallback;
  }

  /** Server side: whether the server may connect to a target. */
  async checkOutbound(target: Address, resolve: Resolve): Promise<OutboundDecision> {
    const { outboundBlock, outboundAllow, outboundMode } = this.#acl;
    const fallback: OutboundDecision = outboundMode === "BlackList" ? "allow" : "block";
    const ip = ipOf(target.host);
    if (ip) {
      if (outboundBlock.matchesIp(ip)) return "block";
      if (outboundAllow.matchesIp(ip)) return "allow";
      return fallback;
    }
    if (target.type !== "domain") return fallback;
    const name = normalizeName(target.host);
    if (outboundBlock.matchesName(name)) return "block";
    if (outboundAllow.matchesName(name)) return "allow";
    const list = this.#outboundList;
    if (!list.hasIpRules) return fallback;
    const hit = await anyResolvedIn(list, target.host, resolve);
    return hit ? (list === outboundBlock ? "block" : "allow") : fallback;
  }

  /**
   * Server side: whether to close a connecting client at once. `ip` is the peer address as
   * `Deno.NetAddr.hostname` gives it; an unreadable one matches no rule.
   */
  isClientBlocked(ip: string): boolean {
    const parsed = ipOf(ip);
    if (this.#acl.mode === "BlackList") {
      return parsed !== undefined && this.#acl.bypass.matchesIp(parsed);
    }
    return parsed === undefined || !this.#acl.proxy.matchesIp(parsed);
  }

  get #localList(): AclRules {
    return this.#acl.mode === "BlackList" ? this.#acl.bypass : this.#acl.proxy;
  }

  get #outboundList(): AclRules {
    return this.#acl.outboundMode === "BlackList"
      ? this.#acl.outboundBlock
      : this.#acl.outboundAllow;
  }
}

/** Whether any address the name resolves to is in the list; a failed resolution is `false`. */
async function anyResolvedIn(list: AclRules, name: string, resolve: Resolve): Promise<boolean> {
  let addresses: readonly string[];
  try {
    addresses = await resolve(name);
  } catch {
    // §16.3: a name that does not resolve takes the default decision, by design not an error.
    return false;
  }
  return addresses.some((address) => {
    const ip = parseIp(address);
    return ip !== undefined && list.matchesIp(ip);
  });
}
