/**
 * Our own stub resolver with a bounded cache, as the Python shadowsocks (asyncdns) and libev
 * (`nameserver`) have: names are resolved before dialling so that the target policy sees the
 * addresses, and a busy server must not ask the same names again and again.
 *
 * One lookup asks A and AAAA in parallel. Each question goes over UDP from a fresh socket (a
 * random source port, with the random ID the only secrets a spoofer must guess, RFC 5452), to
 * the listed servers in turn; a truncated answer (TC) is asked again over TCP. Answers are kept
 * per name and type for their TTL, negative answers for their SOA minimum (RFC 2308), in an LRU
 * map of bounded size. Concurrent lookups of one name share one query.
 *
 * Without servers, the system resolver answers (getaddrinfo, so /etc/hosts and nsswitch count as
 * they do for every other program); it tells no TTL, so its answers are kept for `systemTtlS`.
 * @module
 */
import { addressFromHost } from "../protocol/address.ts";
import {
  answersQuery,
  decodeResponse,
  decodeResponseHead,
  DnsFormatError,
  DnsNameError,
  type DnsQuery,
  type DnsResponseHead,
  encodeQuery,
  interpretResponse,
  normalizeName,
  type QueryType,
  TYPE_A,
  TYPE_AAAA,
} from "../protocol/dns.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { closeQuietly, readExact, UnexpectedEofError, writeAll } from "./io.ts";
import { UdpSocket, unmapIpv4 } from "./udp_socket.ts";
import { lookup } from "node:dns/promises";

/** getaddrinfo for one family; "no such name" and "no address of this family" give `[]`. */
async function getaddrinfo(name: string, family: 4 | 6): Promise<string[]> {
  try {
    const results = await lookup(name, { family, all: true, verbatim: true });
    return results.map((result) => result.address);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "ENODATA" || code === "EAI_NONAME") return [];
    throw error;
  }
}

/** Why a lookup failed; every `ResolveError` carries one. */
export const RESOLVE_REASONS = [
  /** The name does not exist. */
  "nxdomain",
  /** The name exists but has no A or AAAA record (the system resolver reports both so). */
  "nodata",
  /** Every attempt ended in SERVFAIL (or FORMERR, NOTIMP, an unknown RCODE). */
  "servfail",
  /** Every attempt ended in REFUSED (or the last one did, after other failures). */
  "refused",
  /** No server answered in time, or at all (unreachable, connection reset). */
  "timeout",
  /** An answer to our question broke the wire format. */
  "malformed",
  /** The name cannot be asked: too long, a label over 63, a bad character. Nothing was sent. */
  "invalid",
] as const;

export type ResolveReason = typeof RESOLVE_REASONS[number];

/** A failed lookup; its status is `ERR_RESOLVE`. The message names the host and nothing else. */
export class ResolveError extends ProtocolError {
  readonly reason: ResolveReason;

  constructor(host: string, reason: ResolveReason) {
    super("ERR_RESOLVE", `Cannot resolve "${shortHost(host)}": ${REASON_TEXT[reason]}`);
    this.name = "ResolveError";
    this.reason = reason;
  }
}

const REASON_TEXT: Record<ResolveReason, string> = {
  nxdomain: "no such name",
  nodata: "no address for the name",
  servfail: "the DNS server failed",
  refused: "the DNS server refused",
  timeout: "no DNS answer in time",
  malformed: "malformed DNS answer",
  invalid: "invalid name",
};

/** A DNS server to ask: an IP literal (IPv6 without brackets) and a port. */
export interface NameServer {
  readonly host: string;
  readonly port: number;
}

export interface ResolverOptions {
  /**
   * Servers asked in this order, IP literals only. Default: none, which means the system
   * resolver (`systemLookup`).
   */
  servers?: readonly NameServer[];
  /**
   * The system resolver: the addresses of one family for a name, `[]` when it has none.
   * Default: getaddrinfo (node:dns `lookup`).
   */
  systemLookup?: (name: string, family: 4 | 6) => Promise<string[]>;
  /**
   * Cached answers, one per name and type (a name takes up to two), least recently used
   * evicted first. Default 10 000 (a few MB at most). 0 disables the cache.
   */
  cacheSize?: number;
  /** Answers are kept at least this long, whatever their TTL. Default 0. */
  minTtlS?: number;
  /** Answers are kept at most this long: a bad TTL cannot pin an address. Default 3600. */
  maxTtlS?: number;
  /**
   * NXDOMAIN and NODATA are kept for the SOA minimum (RFC 2308 §5), at most this long; without
   * an SOA they are not kept. Default 60.
   */
  negativeTtlS?: number;
  /** How long answers of the system resolver are kept (it tells no TTL). Default 60. */
  systemTtlS?: number;
  /** Per attempt (UDP, and again for the TCP retry). Default 2000. */
  timeoutMs?: number;
  /**
   * Attempts per question, going round `servers` in order; the next one follows a timeout,
   * SERVFAIL, REFUSED or a malformed answer. Default: the number of servers, at least 2.
   */
  attempts?: number;
  /**
   * Questions in flight at once (each holds a socket); more wait their turn, so a flood of
   * names cannot exhaust file descriptors. Default 256.
   */
  maxConcurrent?: number;
  /** Clock in ms, for tests. Default `Date.now`. */
  now?: () => number;
}

export interface ResolveOptions {
  /** Put AAAA addresses before A ones. */
  ipv6First: boolean;
  /** Ends this caller's wait (rejecting with its reason); a shared query goes on for others. */
  signal?: AbortSignal;
}

/** Counters for metrics; a snapshot. Cache counts are per name and type. */
export interface ResolverStats {
  /** DNS messages sent (UDP and TCP), or system resolver calls. */
  queries: number;
  /** Answers served from the cache. */
  cacheHits: number;
  /** NXDOMAIN/NODATA served from the cache. */
  negativeHits: number;
  /** Questions not in the cache (including those that joined a query in flight). */
  cacheMisses: number;
  /** Attempts that got no answer in time. */
  timeouts: number;
  /** Truncated UDP answers asked again over TCP. */
  tcpFallbacks: number;
  /** Datagrams dropped: from another address or port, another ID or question, or unreadable. */
  dropped: number;
  /** Lookups (`resolve` calls) that failed, by reason. */
  errors: Record<ResolveReason, number>;
  /** Entries in the cache now. */
  cacheSize: number;
}

const DEFAULT_CACHE_SIZE = 10_000;
const DEFAULT_MIN_TTL_S = 0;
const DEFAULT_MAX_TTL_S = 3600;
const DEFAULT_NEGATIVE_TTL_S = 60;
const DEFAULT_SYSTEM_TTL_S = 60;
const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_MAX_CONCURRENT = 256;
/**
 * We send no EDNS0, so a conforming server's UDP answer has at most 512 bytes (RFC 1035
 * §4.2.1). Room for more costs little; anything longer is cut and then fails to parse.
 */
const RECEIVE_BUFFER_SIZE = 4096;
/** Datagrams read per attempt before giving up on it: a spoofing flood cannot spin forever. */
const MAX_DATAGRAMS_PER_ATTEMPT = 64;

const LOOPBACK_V4 = "127.0.0.1";
const LOOPBACK_V6 = "::1";

/** What one question (name and type) came to. */
type Resolution =
  | { readonly kind: "answer"; readonly addresses: readonly string[] }
  | { readonly kind: "nxdomain" | "nodata" }
  | { readonly kind: "error"; readonly reason: ResolveReason };

interface CacheEntry {
  readonly expiresAt: number;
  readonly resolution: Resolution;
}

/** A question's result and how long it may be kept (undefined: not at all). */
interface Fresh {
  readonly resolution: Resolution;
  readonly ttlS: number | undefined;
}

export class Resolver {
  readonly #servers: readonly (NameServer & { readonly bindHost: string })[];
  readonly #cacheSize: number;
  readonly #minTtlS: number;
  readonly #maxTtlS: number;
  readonly #negativeTtlS: number;
  readonly #systemTtlS: number;
  readonly #systemLookup: (name: string, family: 4 | 6) => Promise<string[]>;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #now: () => number;
  readonly #slots: Slots;
  /** Map order is recency order: the first key is the least recently used. */
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<Resolution>>();
  readonly #counts = {
    queries: 0,
    cacheHits: 0,
    negativeHits: 0,
    cacheMisses: 0,
    timeouts: 0,
    tcpFallbacks: 0,
    dropped: 0,
  };
  readonly #errors = Object.fromEntries(RESOLVE_REASONS.map((r) => [r, 0])) as Record<
    ResolveReason,
    number
  >;

  /** Throws `RangeError` for a server that is not an IP literal or an option out of range. */
  constructor(options: ResolverOptions = {}) {
    this.#servers = (options.servers ?? []).map((server) => {
      const address = addressFromHost(server.host, server.port);
      if (address.type === "domain") {
        throw new RangeError(`Invalid DNS server "${server.host}": expected an IP address`);
      }
      checkInteger("DNS server port", server.port, 1, 0xffff);
      return {
        host: address.host,
        port: server.port,
        bindHost: address.type === "ipv6" ? "::" : "0.0.0.0",
      };
    });
    this.#cacheSize = checkInteger("cacheSize", options.cacheSize ?? DEFAULT_CACHE_SIZE, 0);
    this.#minTtlS = checkInteger("minTtlS", options.minTtlS ?? DEFAULT_MIN_TTL_S, 0);
    this.#maxTtlS = checkInteger("maxTtlS", options.maxTtlS ?? DEFAULT_MAX_TTL_S, this.#minTtlS);
    this.#negativeTtlS = checkInteger(
      "negativeTtlS",
      options.negativeTtlS ?? DEFAULT_NEGATIVE_TTL_S,
      0,
    );
    this.#systemTtlS = checkInteger("systemTtlS", options.systemTtlS ?? DEFAULT_SYSTEM_TTL_S, 0);
    this.#systemLookup = options.systemLookup ?? getaddrinfo;
    this.#timeoutMs = checkInteger("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1);
    this.#attempts = checkInteger(
      "attempts",
      options.attempts ?? Math.max(2, this.#servers.length),
      1,
    );
    this.#slots = new Slots(
      checkInteger("maxConcurrent", options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT, 1),
    );
    this.#now = options.now ?? Date.now;
  }

  get stats(): ResolverStats {
    return { ...this.#counts, errors: { ...this.#errors }, cacheSize: this.#cache.size };
  }

  /**
   * The addresses of `name`, IPv4 first unless `ipv6First`. IP literals (brackets allowed) and
   * `localhost` (and its subdomains, RFC 6761) are answered without a query. Throws
   * `ResolveError`; rejects with the signal's reason when `signal` aborts first.
   */
  async resolve(name: string, options: ResolveOptions): Promise<string[]> {
    options.signal?.throwIfAborted();
    const literal = addressFromHost(name, 0);
    if (literal.type !== "domain") return [literal.host];
    let normalized: string;
    try {
      normalized = normalizeName(name);
    } catch (error) {
      if (error instanceof DnsNameError) throw this.#failed(name, "invalid");
      throw error;
    }
    if (normalized === "localhost" || normalized.endsWith(".localhost")) {
      return options.ipv6First ? [LOOPBACK_V6, LOOPBACK_V4] : [LOOPBACK_V4, LOOPBACK_V6];
    }
    const [v4, v6] = await untilAborted(
      Promise.all([this.#question(normalized, TYPE_A), this.#question(normalized, TYPE_AAAA)]),
      options.signal,
    );
    const a = v4.kind === "answer" ? v4.addresses : [];
    const aaaa = v6.kind === "answer" ? v6.addresses : [];
    if (a.length + aaaa.length > 0) return options.ipv6First ? [...aaaa, ...a] : [...a, ...aaaa];
    // Nothing found: a missing name outranks an error; an error (the other type might have had
    // addresses) outranks NODATA.
    if (v4.kind === "nxdomain" || v6.kind === "nxdomain") throw this.#failed(name, "nxdomain");
    const first = options.ipv6First ? v6 : v4;
    const second = options.ipv6First ? v4 : v6;
    if (first.kind === "error") throw this.#failed(name, first.reason);
    if (second.kind === "error") throw this.#failed(name, second.reason);
    throw this.#failed(name, "nodata");
  }

  #failed(name: string, reason: ResolveReason): ResolveError {
    this.#errors[reason]++;
    return new ResolveError(name, reason);
  }

  /** One question, from the cache, a query in flight, or a new query. */
  #question(name: string, type: QueryType): Promise<Resolution> {
    const key = `${type === TYPE_A ? "A" : "AAAA"} ${name}`;
    const cached = this.#cacheGet(key);
    if (cached) {
      if (cached.kind === "answer") this.#counts.cacheHits++;
      else this.#counts.negativeHits++;
      return Promise.resolve(cached);
    }
    this.#counts.cacheMisses++;
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const query = (async () => {
      try {
        const fresh = await this.#slots.run(() =>
          this.#servers.length > 0 ? this.#askServers(name, type) : this.#askSystem(name, type)
        );
        if (fresh.ttlS !== undefined) this.#cacheSet(key, fresh.resolution, fresh.ttlS);
        return fresh.resolution;
      } finally {
        this.#inFlight.delete(key);
      }
    })();
    this.#inFlight.set(key, query);
    return query;
  }

  async #askServers(name: string, type: QueryType): Promise<Fresh> {
    let reason: ResolveReason = "timeout";
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      const server = this.#servers[attempt % this.#servers.length]!;
      const query = encodeQuery(name, type);
      const reply = await this.#exchange(server, query);
      if (typeof reply === "string") {
        reason = reply;
        continue;
      }
      let outcome;
      try {
        outcome = interpretResponse(decodeResponse(reply), query);
      } catch (error) {
        if (!(error instanceof DnsFormatError)) throw error;
        reason = "malformed";
        continue;
      }
      switch (outcome.kind) {
        case "servfail":
        case "refused":
          reason = outcome.kind;
          continue;
        case "answer":
          return {
            resolution: { kind: "answer", addresses: outcome.addresses },
            ttlS: Math.min(Math.max(outcome.ttlS, this.#minTtlS), this.#maxTtlS),
          };
        default:
          return {
            resolution: { kind: outcome.kind },
            ttlS: outcome.ttlS === undefined
              ? undefined
              : Math.min(outcome.ttlS, this.#negativeTtlS, this.#maxTtlS),
          };
      }
    }
    return { resolution: { kind: "error", reason }, ttlS: undefined };
  }

  /** One attempt: UDP, then TCP if truncated. The whole answer, or why there is none. */
  async #exchange(
    server: NameServer & { readonly bindHost: string },
    query: DnsQuery,
  ): Promise<Uint8Array | "timeout" | "malformed"> {
    const udp = await this.#udp(server, query);
    if (udp === undefined) {
      this.#counts.timeouts++;
      return "timeout";
    }
    if (!udp.head.truncated) return udp.message;
    this.#counts.tcpFallbacks++;
    const tcp = await this.#tcp(server, query);
    if (tcp === "timeout") this.#counts.timeouts++;
    return tcp;
  }

  /**
   * Sends `query` from a new socket and waits for a datagram from the server that answers it;
   * anything else is dropped and the wait goes on. Undefined at the timeout.
   */
  async #udp(
    server: NameServer & { readonly bindHost: string },
    query: DnsQuery,
  ): Promise<{ head: DnsResponseHead; message: Uint8Array } | undefined> {
    using socket = UdpSocket.bind(server.bindHost, 0);
    const timer = setTimeout(() => socket.close(), this.#timeoutMs);
    try {
      this.#counts.queries++;
      await socket.send(query.bytes, { hostname: server.host, port: server.port });
      const buffer = new Uint8Array(RECEIVE_BUFFER_SIZE);
      for (let i = 0; i < MAX_DATAGRAMS_PER_ATTEMPT; i++) {
        const datagram = await socket.receive(buffer);
        if (datagram === null) return undefined;
        const head = datagram.from.port === server.port &&
            unmapIpv4(datagram.from.hostname) === server.host
          ? readHead(datagram.data)
          : undefined;
        if (head === undefined || !answersQuery(head, query)) {
          this.#counts.dropped++;
          continue;
        }
        return { head, message: datagram.data.slice() };
      }
      return undefined;
    } catch (error) {
      // The OS refused to send or reported the port unreachable: no answer from this server.
      if (isNetworkError(error)) return undefined;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The same question over TCP, framed by a 2-byte length (RFC 1035 §4.2.2). */
  async #tcp(server: NameServer, query: DnsQuery): Promise<Uint8Array | "timeout" | "malformed"> {
    const controller = new AbortController();
    let conn: Deno.TcpConn | undefined;
    const timer = setTimeout(() => {
      controller.abort();
      if (conn) closeQuietly(conn);
    }, this.#timeoutMs);
    try {
      conn = await Deno.connect({
        hostname: server.host,
        port: server.port,
        signal: controller.signal,
      });
      const framed = new Uint8Array(2 + query.bytes.length);
      new DataView(framed.buffer).setUint16(0, query.bytes.length);
      framed.set(query.bytes, 2);
      this.#counts.queries++;
      await writeAll(conn, framed);
      const prefix = await readExact(conn, new Uint8Array(2));
      if (prefix === null) return "timeout";
      const message = await readExact(conn, new Uint8Array((prefix[0]! << 8) | prefix[1]!));
      if (message === null) return "malformed";
      const head = readHead(message);
      return head !== undefined && answersQuery(head, query) ? message : "malformed";
    } catch (error) {
      if (isNetworkError(error)) return "timeout";
      throw error;
    } finally {
      clearTimeout(timer);
      if (conn) closeQuietly(conn);
    }
  }

  /** The system resolver: no TTL, and "no such name" and "no address" look alike. */
  async #askSystem(name: string, type: QueryType): Promise<Fresh> {
    this.#counts.queries++;
    const limitMs = this.#timeoutMs * this.#attempts;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), limitMs);
    });
    try {
      const addresses = await Promise.race([
        this.#systemLookup(name, type === TYPE_A ? 4 : 6),
        timeout,
      ]);
      if (addresses === "timeout") {
        this.#counts.timeouts++;
        return { resolution: { kind: "error", reason: "timeout" }, ttlS: undefined };
      }
      const ttlS = Math.min(Math.max(this.#systemTtlS, this.#minTtlS), this.#maxTtlS);
      if (addresses.length > 0) return { resolution: { kind: "answer", addresses }, ttlS };
      return { resolution: { kind: "nodata" }, ttlS: Math.min(ttlS, this.#negativeTtlS) };
    } catch {
      // A temporary failure (EAI_AGAIN and the like): not kept, the next lookup asks again.
      return { resolution: { kind: "error", reason: "servfail" }, ttlS: undefined };
    } finally {
      clearTimeout(timer);
    }
  }

  #cacheGet(key: string): Resolution | undefined {
    const entry = this.#cache.get(key);
    if (entry === undefined) return undefined;
    this.#cache.delete(key);
    if (entry.expiresAt <= this.#now()) return undefined;
    this.#cache.set(key, entry);
    return entry.resolution;
  }

  #cacheSet(key: string, resolution: Resolution, ttlS: number): void {
    if (ttlS <= 0 || this.#cacheSize === 0) return;
    this.#cache.delete(key);
    this.#cache.set(key, { expiresAt: this.#now() + ttlS * 1000, resolution });
    // Expired entries stay until touched or pushed out: the size bound holds either way.
    while (this.#cache.size > this.#cacheSize) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
  }
}

/** A counting semaphore: at most `limit` tasks run; the others wait in arrival order. */
class Slots {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so `#running` stays as it is.
      if (next) next();
      else this.#running--;
    }
  }
}

/** The header and question of `message`, or undefined when even those do not parse. */
function readHead(message: Uint8Array): DnsResponseHead | undefined {
  try {
    return decodeResponseHead(message);
  } catch (error) {
    if (error instanceof DnsFormatError) return undefined;
    throw error;
  }
}

/** Errors of the network rather than of this code: they end one attempt, not the lookup. */
function isNetworkError(error: unknown): boolean {
  if (error instanceof UnexpectedEofError) return true;
  if (error instanceof DOMException) return error.name === "AbortError";
  // A missing permission is the operator's to see, not a server that did not answer.
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return false;
  }
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

/** `promise`, or the signal's reason if it aborts first; the promise itself goes on. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function checkInteger(name: string, value: number, min: number, max = Infinity): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${name} ${value}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** The host for an error message, cut short: an over-long name is someone else's input. */
function shortHost(host: string): string {
  return host.length > 260 ? `${host.slice(0, 257)}...` : host;
}
