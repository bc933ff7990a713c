/**
 * The UDP counterpart of `serveConnections`, for relays that give every client session its own
 * outbound socket (a full-cone NAT): the server (clients → any target) and the tunnel
 * (clients → the Shadowsocks server).
 *
 * ```
 *   uplink:   client ─▶ inbound socket ─unwrap─▶ association queue ─resolve, policy─▶ outbound ─▶ target
 *   downlink: target ─▶ outbound socket ─session.wrap─▶ inbound socket ─▶ session.client
 * ```
 *
 * The codec decides what a session is: one client address (AEAD-2017, the tunnel) or one 2022
 * session ID, whose replies follow the client when its address changes. The relay only keeps
 * one association per session key and never sees a salt, nonce, tag or packet ID.
 *
 * Bounds: the NAT table holds at most `maxAssociations` associations (least recently used
 * evicted first, idle ones expire after `idleTimeoutMs`, or the codec's `minIdleMs` if longer).
 * Each association holds at most two sockets (one per IP family, opened on first use), one
 * 64 KiB receive buffer per socket (pages are only touched by datagrams that large), at most
 * `MAX_QUEUED` datagrams waiting for a send and at most `MAX_NAMES` resolved names. Invalid
 * datagrams are dropped and counted, never answered.
 *
 * Open sockets: at most `2 × (maxAssociations + 1)` (one per family per association: one
 * association's more than the table). A removed association's sockets are closed at once, but
 * Deno releases a socket's descriptor only when its pending receive has ended, in a later turn
 * of the event loop (relay/udp_socket.ts); so after a datagram that removed an association (a
 * new source evicting the least recently used one), the receive loop reads nothing more until
 * the removed sockets are released, at most `RELEASE_WAIT_MS`. Without that wait, a flood of
 * new source ports against a table of 64 held 276–662 sockets (and 821–958 with 5000 sources),
 * each evicted socket still open while the loop, never letting the event loop turn, opened more.
 *
 * A new association's sockets never take a port that an association closed in the last 30 s, in
 * this relay or another of the process (relay/port_quarantine.ts): replies still on their way to
 * a removed association are dropped by the kernel rather than handed to another client.
 * @module
 */
import { bindOutside, type PortQuarantine, processQuarantine } from "./port_quarantine.ts";
import type { Address } from "../protocol/address.ts";
import { TimestampError } from "../protocol/aead2022_time.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import { allowedTargets, resolveTarget } from "./direct.ts";
import type { Logger } from "./log.ts";
import { LoopGuard } from "./loop_errors.ts";
import { NatTable, type RemovalReason } from "./nat_table.ts";
import { settledWithin } from "./timer_queue.ts";
import type { UdpService } from "./service.ts";
import { formatEndpoint, UDP_BUFFER_SIZE, UdpSocket } from "./udp_socket.ts";
import { createUdpStats, type UdpStats, type UdpUserStats, udpUserStats } from "./udp_stats.ts";

/** Datagrams one association may have waiting (for a name lookup or a send) before drops. */
const MAX_QUEUED = 64;
/** Resolved names one association remembers; the cache is emptied when it is full. */
const MAX_NAMES = 16;
/** At most one "clock skew" line per this many milliseconds (junk must not flood the log). */
const SKEW_LOG_INTERVAL_MS = 10_000;
/**
 * Longest the receive loop waits for removed associations' sockets to be released (normally
 * one turn of the event loop); a send stuck in the OS must not stop the relay.
 */
const RELEASE_WAIT_MS = 1000;

/** Where a client datagram goes, and the bytes to send there. */
export interface DatagramRequest {
  readonly target: Address;
  /** Must not be a view of the buffer `unwrap` was given: it waits in a queue. */
  readonly payload: Uint8Array;
}

/**
 * One client as its codec sees it (a client address, or a 2022 session), with what its replies
 * need. The relay gives each session one association: its own outbound sockets.
 */
export interface DatagramSession {
  /** The association's key in the NAT table; appears in debug lines, so never a secret. */
  readonly key: string;
  /** Where replies go. The codec may move it (2022 client address migration). */
  readonly client: Deno.NetAddr;
  /** The user of a multi-user server, counted under `UdpStats.users`. */
  readonly user?: string | undefined;
  /**
   * `view` is `replyHeadroom` free bytes followed by one reply from `source`; returns the
   * datagram for the client (it may be a view of `view`). Throws `ProtocolError` to drop it.
   */
  wrap(view: Uint8Array, source: Deno.NetAddr): Uint8Array;
}

/** A client datagram, unwrapped: where it goes and the session it belongs to. */
export interface Unwrapped<S extends DatagramSession> {
  readonly session: S;
  readonly request: DatagramRequest;
}

/** What turns client datagrams into target datagrams and replies back (server, tunnel). */
export interface DatagramCodec<S extends DatagramSession = DatagramSession> {
  /** Free bytes in front of each client datagram that `unwrap` may write into. */
  readonly requestHeadroom: number;
  /** Free bytes in front of each reply that `wrap` may write into. */
  readonly replyHeadroom: number;
  /**
   * Sessions stay at least this long after their last datagram, whatever `idleTimeoutMs` says
   * (2022: a replayed packet must still meet its session's window). Default 0.
   */
  readonly minIdleMs?: number;
  /** User names to count from the start (multi-user servers). Default none. */
  readonly users?: readonly string[];
  /**
   * `view` is `requestHeadroom` free bytes followed by one datagram from `from`. Returns where
   * it goes and its session: the live one `find(key)` gave, or a new one, which the relay then
   * stores under its key. Throws `ProtocolError` to drop the datagram (counted under its code).
   */
  unwrap(view: Uint8Array, from: Deno.NetAddr, find: (key: string) => S | undefined): Unwrapped<S>;
}

export interface DatagramServiceOptions {
  /** Service name for log lines. */
  name: string;
  logger: Logger;
  /** NAT table capacity. */
  maxAssociations: number;
  /** Associations idle this long are closed. */
  idleTimeoutMs: number;
  /** Skip the target policy (tests, the tunnel's own server). */
  allowPrivateTargets: boolean;
  ipv6First: boolean;
  /** False for users who may not send now (over their data limit): dropped as `ERR_AUTH`. */
  userAllowed?: (user: string) => boolean;
  /** True for targets an ACL blocks: their datagrams are dropped as `ERR_BLOCKED`. */
  blocked?: (target: Address) => Promise<boolean>;
  /** Ports released lately, kept from new associations. Default: the process's. */
  quarantine?: PortQuarantine;
  /** The NAT table's clock. Default `Date.now`. */
  now?: () => number;
  signal?: AbortSignal;
}

/** Shared by every association of one service. */
interface Relay<S extends DatagramSession> {
  readonly inbound: UdpSocket;
  readonly codec: DatagramCodec<S>;
  readonly stats: UdpStats;
  readonly options: DatagramServiceOptions;
  readonly table: NatTable<Association<S>>;
  /** Ports of sockets this relay closed lately, kept from new associations. */
  readonly quarantine: PortQuarantine;
}

/** Relays datagrams arriving on `inbound` until shutdown; `inbound` is closed by `close()`. */
export function serveDatagrams<S extends DatagramSession>(
  inbound: UdpSocket,
  codec: DatagramCodec<S>,
  options: DatagramServiceOptions,
): UdpService {
  const stats = createUdpStats(codec.users);
  const { logger, name } = options;
  const finishing = new Set<Promise<void>>();
  /** Removed associations whose sockets are closed but not yet released. */
  const releasing = new Set<Promise<void>>();
  const onRemove = (_key: string, association: Association<S>, reason: RemovalReason) => {
    stats.associations--;
    if (reason === "lru") stats.associationsEvicted++;
    if (reason === "idle") stats.associationsExpired++;
    logger.debug(`${name} udp ${association.key} association closed (${reason})`);
    const done = association.done().finally(() => finishing.delete(done));
    finishing.add(done);
    const released = association.released();
    releasing.add(released);
    released.finally(() => releasing.delete(released));
  };
  const idleMs = Math.max(options.idleTimeoutMs, codec.minIdleMs ?? 0);
  const table = new NatTable<Association<S>>({
    capacity: options.maxAssociations,
    idleMs,
    sweepIntervalMs: sweepInterval(idleMs),
    onRemove,
    ...(options.now ? { now: options.now } : {}),
  });
  const relay: Relay<S> = {
    inbound,
    codec,
    stats,
    options,
    table,
    quarantine: options.quarantine ?? processQuarantine,
  };
  const find = (key: string) => table.peek(key)?.session;
  let lastSkewLog = -Infinity;

  const onDatagram = (view: Uint8Array, from: Deno.NetAddr) => {
    let unwrapped: Unwrapped<S>;
    try {
      unwrapped = codec.unwrap(view, from, find);
    } catch (error) {
      const status = dropStatus(error, logger, name);
      stats.statuses[status]++;
      const line = `${name} udp ${formatEndpoint(from)} ${status} ${errorMessage(error)}`;
      const now = Date.now();
      if (error instanceof TimestampError && now - lastSkewLog >= SKEW_LOG_INTERVAL_MS) {
        // A client with a wrong clock deserves a human's eye, not a silent drop.
        lastSkewLog = now;
        logger.info(line);
      } else {
        logger.debug(line);
      }
      return;
    }
    const { session, request } = unwrapped;
    if (session.user !== undefined && options.userAllowed && !options.userAllowed(session.user)) {
      stats.statuses.ERR_AUTH++;
      return;
    }
    let association = table.get(session.key);
    if (association?.session !== session) {
      association = new Association(session, relay);
      table.set(session.key, association);
      stats.associations++;
      stats.associationsOpened++;
      if (association.user) association.user.sessions++;
    }
    association.enqueue(request);
  };

  const receiving = (async () => {
    const buffer = new Uint8Array(codec.requestHeadroom + UDP_BUFFER_SIZE);
    const into = buffer.subarray(codec.requestHeadroom);
    const guard = new LoopGuard({
      name: `${name} udp receive`,
      logger,
      signal: inbound.closing,
      counts: stats.receiveErrors,
    });
    for (;;) {
      // The sockets of associations removed so far are released before a datagram can open
      // another (see the module comment).
      if (releasing.size > 0) await settledWithin(Promise.allSettled(releasing), RELEASE_WAIT_MS);
      const datagram = await inbound.receiveNext(into, guard);
      if (!datagram) return;
      onDatagram(buffer.subarray(0, codec.requestHeadroom + datagram.data.length), datagram.from);
    }
  })();

  const stopped = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      inbound.close();
      await receiving;
      table.close();
      await Promise.allSettled([...finishing]);
      stopped.resolve();
    })();
  options.signal?.addEventListener("abort", () => close(), { once: true });
  if (options.signal?.aborted) close();
  return { addr: inbound.addr, stats, closed: stopped.promise, close };
}

/** How often idle associations are looked for: a tenth of the timeout, 50 ms to 5 s. */
export function sweepInterval(idleTimeoutMs: number): number {
  return Math.min(5000, Math.max(50, Math.floor(idleTimeoutMs / 10)));
}

/** One client session: its outbound sockets, their reply loops and its send queue. */
class Association<S extends DatagramSession> {
  readonly key: string;
  readonly session: S;
  /** The session's user counters (multi-user servers). */
  readonly user: UdpUserStats | undefined;
  readonly #relay: Relay<S>;
  readonly #sockets: { v4?: UdpSocket; v6?: UdpSocket } = {};
  readonly #loops: Promise<void>[] = [];
  readonly #names = new Map<string, string[]>();
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #closed = false;

  constructor(session: S, relay: Relay<S>) {
    this.key = session.key;
    this.session = session;
    this.user = session.user === undefined ? undefined : udpUserStats(relay.stats, session.user);
    this.#relay = relay;
  }

  /** Queues a datagram for sending; drops it (counted) when the queue is full. */
  enqueue(request: DatagramRequest): void {
    if (this.#queued >= MAX_QUEUED) {
      this.#relay.stats.statuses.ERR_RELAY_TARGET++;
      return;
    }
    this.#queued++;
    this.#queue = this.#queue.then(async () => {
      try {
        await this.#send(request);
      } finally {
        this.#queued--;
      }
    });
  }

  /** Closes the sockets; reply loops end and queued datagrams are dropped. */
  close(): void {
    this.#closed = true;
    for (const socket of [this.#sockets.v4, this.#sockets.v6]) {
      if (!socket || socket.closed) continue;
      // Late replies to this port must not reach the next association that binds it.
      this.#relay.quarantine.add(socket.addr.port);
      socket.close();
    }
  }

  /** Resolves once every socket it opened is closed and released (after `close()`). */
  released(): Promise<void> {
    const { v4, v6 } = this.#sockets;
    if (v4 && v6) return Promise.all([v4.released(), v6.released()]).then(() => {});
    return (v4 ?? v6)?.released() ?? Promise.resolve();
  }

  /** Settles when every loop and queued send of this association has finished. */
  async done(): Promise<void> {
    await this.#queue;
    await Promise.allSettled(this.#loops);
  }

  /** Sends one datagram; every failure is counted and logged, never thrown. */
  async #send(request: DatagramRequest): Promise<void> {
    const { stats, options } = this.#relay;
    try {
      if (options.blocked && await options.blocked(request.target)) {
        throw new ProtocolError("ERR_BLOCKED", "blocked by the ACL");
      }
      const ip = await this.#pickIp(request.target);
      const socket = this.#socketFor(ip);
      await socket.send(request.payload, { hostname: ip, port: request.target.port });
      stats.statuses.OK++;
      stats.bytesUplink += request.payload.length;
      if (this.user) {
        this.user.datagramsRelayed++;
        this.user.bytesUplink += request.payload.length;
      }
    } catch (error) {
      // Anything but a ProtocolError here is the OS refusing the send (too long, unreachable,
      // socket closed by eviction): the target side failed.
      const status = error instanceof ProtocolError ? error.code : "ERR_RELAY_TARGET";
      stats.statuses[status]++;
      options.logger.debug(`${options.name} udp ${this.key} ${status} ${errorMessage(error)}`);
    }
  }

  /** The first IP of the target the policy allows; names are looked up once per association. */
  async #pickIp(target: Address): Promise<string> {
    const { allowPrivateTargets, ipv6First } = this.#relay.options;
    if (target.type !== "domain") {
      return allowedTargets(target, [target.host], allowPrivateTargets)[0]!;
    }
    let resolved = this.#names.get(target.host);
    if (!resolved) {
      resolved = await resolveTarget(target, ipv6First);
      if (this.#names.size >= MAX_NAMES) this.#names.clear();
      this.#names.set(target.host, resolved);
    }
    return allowedTargets(target, resolved, allowPrivateTargets)[0]!;
  }

  /** The outbound socket for `ip`'s family, opened (with its reply loop) on first use. */
  #socketFor(ip: string): UdpSocket {
    if (this.#closed) throw new ProtocolError("ERR_RELAY_TARGET", "Association closed");
    const family = ip.includes(":") ? "v6" : "v4";
    let socket = this.#sockets[family];
    if (!socket) {
      try {
        const host = family === "v6" ? "::" : "0.0.0.0";
        socket = bindOutside(() => UdpSocket.bind(host, 0), this.#relay.quarantine);
      } catch (error) {
        throw new ProtocolError("ERR_CONNECT", `Cannot open a UDP socket: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      this.#sockets[family] = socket;
      this.#loops.push(this.#replyLoop(socket));
    }
    return socket;
  }

  /** Wraps every reply arriving on `socket` and sends it to the client, until it closes. */
  async #replyLoop(socket: UdpSocket): Promise<void> {
    const { inbound, codec, stats, options, table } = this.#relay;
    const { session, user } = this;
    const buffer = new Uint8Array(codec.replyHeadroom + UDP_BUFFER_SIZE);
    const into = buffer.subarray(codec.replyHeadroom);
    // Errors never end this loop: closing the socket does (eviction, expiry, shutdown).
    const guard = new LoopGuard({
      name: `${options.name} udp ${this.key} reply receive`,
      logger: options.logger,
      signal: socket.closing,
      counts: stats.receiveErrors,
    });
    for (;;) {
      const datagram = await socket.receiveNext(into, guard);
      if (!datagram) return;
      table.touch(this.key, this);
      stats.bytesDownlink += datagram.data.length;
      if (user) user.bytesDownlink += datagram.data.length;
      let reply: Uint8Array;
      try {
        reply = session.wrap(
          buffer.subarray(0, codec.replyHeadroom + datagram.data.length),
          datagram.from,
        );
      } catch (error) {
        dropStatus(error, options.logger, options.name);
        stats.repliesDropped++;
        options.logger.debug(
          `${options.name} udp ${this.key} reply dropped: ${errorMessage(error)}`,
        );
        continue;
      }
      try {
        await inbound.send(reply, session.client);
        stats.repliesRelayed++;
        if (user) user.repliesRelayed++;
      } catch (error) {
        stats.repliesDropped++;
        options.logger.debug(
          `${options.name} udp ${this.key} reply not sent: ${errorMessage(error)}`,
        );
      }
    }
  }
}

/**
 * The status a codec failure drops a datagram with. A codec throws only `ProtocolError`; any
 * other error is a bug, logged at error level and counted as `ERR_READ_ADDRESS` so that one bad
 * datagram never stops the relay.
 */
export function dropStatus(error: unknown, logger: Logger, name: string): SessionStatus {
  if (error instanceof ProtocolError) return error.code;
  logger.error(`${name} udp: datagram failed unexpectedly: ${(error as Error)?.stack ?? error}`);
  return "ERR_READ_ADDRESS";
}
