/**
 * The UDP counterpart of `serveConnections`, for relays that give every client address its own
 * outbound socket (a full-cone NAT): the server (clients → any target) and the tunnel
 * (clients → the Shadowsocks server).
 *
 * ```
 *   uplink:   client ─▶ inbound socket ─unwrap─▶ association queue ─resolve, policy─▶ outbound ─▶ target
 *   downlink: target ─▶ outbound socket ─wrap─▶ inbound socket ─▶ client
 * ```
 *
 * Bounds: the NAT table holds at most `maxAssociations` associations (least recently used
 * evicted first, idle ones expire after `idleTimeoutMs`). Each association holds at most two
 * sockets (one per IP family, opened on first use), one 64 KiB receive buffer per socket (pages
 * are only touched by datagrams that large), at most `MAX_QUEUED` datagrams waiting for a send
 * and at most `MAX_NAMES` resolved names. Invalid datagrams are dropped and counted, never
 * answered.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import { ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import { allowedTargets, resolveTarget } from "./direct.ts";
import type { Logger } from "./log.ts";
import { NatTable, type RemovalReason } from "./nat_table.ts";
import type { UdpService } from "./service.ts";
import { formatEndpoint, UDP_BUFFER_SIZE, UdpSocket } from "./udp_socket.ts";
import { createUdpStats, type UdpStats } from "./udp_stats.ts";

/** Datagrams one association may have waiting (for a name lookup or a send) before drops. */
const MAX_QUEUED = 64;
/** Resolved names one association remembers; the cache is emptied when it is full. */
const MAX_NAMES = 16;
/** Consecutive receive errors after which a receive loop gives up (the socket is broken). */
const MAX_RECEIVE_ERRORS = 100;

/** Where a client datagram goes, and the bytes to send there. */
export interface DatagramRequest {
  readonly target: Address;
  /** Must not be a view of the buffer `unwrap` was given: it waits in a queue. */
  readonly payload: Uint8Array;
}

/** What turns client datagrams into target datagrams and replies back (server, tunnel). */
export interface DatagramCodec {
  /** Free bytes in front of each client datagram that `unwrap` may write into. */
  readonly requestHeadroom: number;
  /** Free bytes in front of each reply that `wrap` may write into. */
  readonly replyHeadroom: number;
  /**
   * `view` is `requestHeadroom` free bytes followed by one client datagram. Throws
   * `ProtocolError` to drop the datagram (counted under its code).
   */
  unwrap(view: Uint8Array): DatagramRequest;
  /**
   * `view` is `replyHeadroom` free bytes followed by one reply from `source`; returns the
   * datagram for the client (it may be a view of `view`). Throws `ProtocolError` to drop it.
   */
  wrap(view: Uint8Array, source: Deno.NetAddr): Uint8Array;
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
  /** The NAT table's clock. Default `Date.now`. */
  now?: () => number;
  signal?: AbortSignal;
}

/** Shared by every association of one service. */
interface Relay {
  readonly inbound: UdpSocket;
  readonly codec: DatagramCodec;
  readonly stats: UdpStats;
  readonly options: DatagramServiceOptions;
  readonly table: NatTable<Association>;
}

/** Relays datagrams arriving on `inbound` until shutdown; `inbound` is closed by `close()`. */
export function serveDatagrams(
  inbound: UdpSocket,
  codec: DatagramCodec,
  options: DatagramServiceOptions,
): UdpService {
  const stats = createUdpStats();
  const { logger, name } = options;
  const finishing = new Set<Promise<void>>();
  const onRemove = (_key: string, association: Association, reason: RemovalReason) => {
    stats.associations--;
    if (reason === "lru") stats.associationsEvicted++;
    if (reason === "idle") stats.associationsExpired++;
    logger.debug(`${name} udp ${association.key} association closed (${reason})`);
    const done = association.done().finally(() => finishing.delete(done));
    finishing.add(done);
  };
  const table = new NatTable<Association>({
    capacity: options.maxAssociations,
    idleMs: options.idleTimeoutMs,
    sweepIntervalMs: sweepInterval(options.idleTimeoutMs),
    onRemove,
    ...(options.now ? { now: options.now } : {}),
  });
  const relay: Relay = { inbound, codec, stats, options, table };

  const onDatagram = (view: Uint8Array, from: Deno.NetAddr) => {
    let request: DatagramRequest;
    try {
      request = codec.unwrap(view);
    } catch (error) {
      const status = dropStatus(error, logger, name);
      stats.statuses[status]++;
      logger.debug(`${name} udp ${formatEndpoint(from)} ${status} ${errorMessage(error)}`);
      return;
    }
    const key = formatEndpoint(from);
    let association = table.get(key);
    if (!association) {
      association = new Association(key, from, relay);
      table.set(key, association);
      stats.associations++;
      stats.associationsOpened++;
    }
    association.enqueue(request);
  };

  const receiving = (async () => {
    const buffer = new Uint8Array(codec.requestHeadroom + UDP_BUFFER_SIZE);
    const into = buffer.subarray(codec.requestHeadroom);
    let errors = 0;
    for (;;) {
      let datagram;
      try {
        datagram = await inbound.receive(into);
      } catch (error) {
        if (++errors >= MAX_RECEIVE_ERRORS) {
          logger.error(`${name} udp: receive keeps failing, UDP relay stopped: ${error}`);
          return;
        }
        logger.warn(`${name} udp: receive failed: ${errorMessage(error)}`);
        continue;
      }
      if (!datagram) return;
      errors = 0;
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

/** One client address: its outbound sockets, their reply loops and its send queue. */
class Association {
  readonly key: string;
  readonly #client: Deno.NetAddr;
  readonly #relay: Relay;
  readonly #sockets: { v4?: UdpSocket; v6?: UdpSocket } = {};
  readonly #loops: Promise<void>[] = [];
  readonly #names = new Map<string, string[]>();
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #closed = false;

  constructor(key: string, client: Deno.NetAddr, relay: Relay) {
    this.key = key;
    this.#client = client;
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
    this.#sockets.v4?.close();
    this.#sockets.v6?.close();
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
      const ip = await this.#pickIp(request.target);
      const socket = this.#socketFor(ip);
      await socket.send(request.payload, { hostname: ip, port: request.target.port });
      stats.statuses.OK++;
      stats.bytesUplink += request.payload.length;
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
        socket = UdpSocket.bind(family === "v6" ? "::" : "0.0.0.0", 0);
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
    const buffer = new Uint8Array(codec.replyHeadroom + UDP_BUFFER_SIZE);
    const into = buffer.subarray(codec.replyHeadroom);
    let errors = 0;
    for (;;) {
      let datagram;
      try {
        datagram = await socket.receive(into);
      } catch (error) {
        if (++errors >= MAX_RECEIVE_ERRORS) {
          options.logger.warn(`${options.name} udp ${this.key}: receive keeps failing: ${error}`);
          table.delete(this.key, this);
          return;
        }
        continue;
      }
      if (!datagram) return;
      errors = 0;
      table.touch(this.key, this);
      stats.bytesDownlink += datagram.data.length;
      let reply: Uint8Array;
      try {
        reply = codec.wrap(
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
        await inbound.send(reply, this.#client);
        stats.repliesRelayed++;
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
