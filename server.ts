/**
 * The server role: accept Shadowsocks connections, authenticate the request header, connect to
 * its target directly and relay. AEAD-2017 and the 2022 edition differ only in the framing the
 * stream runs (protocol/session_framings.ts); the session below is the same for both.
 *
 * Stages of one session:
 *   1. read the request header (handshake deadline running): salt, then
 *      AEAD-2017: first chunk → replay check on the salt → address (may span chunks);
 *      2022: [EIH → user] → fixed header → timestamp ±30 s → salt pool → variable header.
 *      Anything that fails → probe handling
 *   2. policy check, resolve, connect; write the initial payload
 *   3. relay: uplink = client → target (decrypting), downlink = target → client (encrypting;
 *      2022: the response header goes with the target's first bytes, so a target that closes
 *      without a word gets a bare FIN)
 *
 * Probe handling: after an authentication or parse failure the server sends nothing and does not
 * close early; it reads and discards until the client closes or the handshake deadline passes.
 * A 2022 client refused for its clock gets an info line "clock skew of N s" instead of silence.
 * Multi-user (SIP023): sessions and bytes are also counted per user in `stats.users`.
 *
 * UDP (`mode` `tcp_and_udp` or `udp_only`) listens on the same port number; each datagram is
 * opened, its target checked against the same policy and relayed through a per-session NAT
 * association (relay/datagram_service.ts): per client address for AEAD-2017, per session ID
 * (and user) for 2022 (relay/shadowsocks_udp2022.ts). Invalid and replayed datagrams are
 * dropped and counted, never answered.
 * @module
 */
import type { ServerConfig, ServerUser } from "./config/types.ts";
import { findMethod } from "./crypto/methods.ts";
import { type Address, formatAddress } from "./protocol/address.ts";
import { AccessControl } from "./route/acl.ts";
import { startPlugin } from "./service/plugin.ts";
import { loggingObserver, type Observer, SERVER_INFO_STATUSES } from "./service/observer.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "./protocol/errors.ts";
import { type ServerFramings, serverFramings } from "./protocol/session_framings.ts";
import { type DatagramCodec, serveDatagrams } from "./relay/datagram_service.ts";
import { type FleetReplayCheck, ReplayFilter, type ReplayStore } from "./protocol/replay_filter.ts";
import { type ClientIpGate, ClientIpWindow, localGate } from "./service/client_ips.ts";
import { SaltPool, type SaltStore } from "./protocol/salt_pool.ts";
import { Deadline } from "./relay/deadline.ts";
import { connectDirect, resolveTarget } from "./relay/direct.ts";
import { applyNoDelay, closeQuietly, writeAll } from "./relay/io.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { bindTcpAndUdp } from "./relay/listen.ts";
import { relay } from "./relay/pipe.ts";
import {
  type ByteCounter,
  combineServices,
  createUserStats,
  type RunningService,
  serveConnections,
  type ServiceOptions,
  type UdpService,
  type UserStats,
} from "./relay/service.ts";
import { type InboundRequest, ShadowsocksStream } from "./relay/shadowsocks_stream.ts";
import { createServerUdpCodec } from "./relay/shadowsocks_udp.ts";
import type { UdpStats } from "./relay/udp_stats.ts";
import type { ListenerCounters } from "./service/shared_stats.ts";

export type { FleetReplayCheck, RunningService, ServiceOptions };

/** Bytes discarded per read while draining a failed handshake. */
const DRAIN_BUFFER_SIZE = 4096;
/** A 2022 client clock this far off (seconds) still passes but earns a debug line. */
const NOTABLE_SKEW_S = 10;

/**
 * What a server session needs. A reload may replace the config, keys and ACL (`update`): each
 * session reads them once when it starts, so live sessions keep what they started with.
 */
interface ServerContext {
  config: ServerConfig;
  /** Keys: one framing per session. */
  framings: ServerFramings;
  /** Replay memory, kept across reloads: salts are random, so a new key needs no new store. */
  readonly replay: { saltPool: SaltStore; replayFilter: ReplayStore };
  /** Live TCP connections per user, so a reload that removes a user can end their sessions. */
  readonly liveByUser: Map<string, Set<Deno.TcpConn>>;
  /** Per-user counters (multi-user 2022), the same object as the service's `stats.users`. */
  userStats: Record<string, UserStats>;
  /** Shared-memory counters, when the listener runs in several isolates (service/workers.ts). */
  readonly counters?: ListenerCounters;
  logger: Logger;
  /** Writes each session's one log line. */
  observer: Observer;
  /** Client and outbound checks of the ACL, when there is one. */
  acl?: AccessControl;
  /** The UDP half's counters, once it runs (a user's data limit counts both halves). */
  udpStats?: UdpStats;
  /** The fleet's shared replay memory (service/fleet.ts), when the server runs in one. */
  readonly fleet?: FleetReplayCheck;
  /** How long the fleet keeps a salt of this method (ms). */
  readonly fleetTtlMs: number;
  /** Who decides `max_client_ips` (one answer per process, or per fleet). */
  readonly clientIps: ClientIpGate;
}

/** A 2022 salt is valid ±30 s: kept 61 s it cannot come back. */
const FLEET_TTL_2022_MS = 61_000;
/** AEAD-2017 and stream salts carry no time: 10 min bounds Redis memory (local filters keep more). */
const FLEET_TTL_LEGACY_MS = 600_000;

/**
 * Bytes a user moved so far, both directions, TCP and UDP: in every isolate when the listener
 * runs in several (a worker has no UDP half; it reads the main isolate's UDP bytes instead).
 */
function usage(context: ServerContext, user: string): number {
  const tcp = context.userStats[user];
  const udp = context.udpStats?.users[user];
  const tcpBytes = context.counters
    ? context.counters.userBytes(user, context.udpStats === undefined)
    : tcp
    ? tcp.bytesUplink + tcp.bytesDownlink
    : 0;
  return tcpBytes + (udp ? udp.bytesUplink + udp.bytesDownlink : 0);
}

/** Each config's users by name, made on first use: asked per session, chunk and datagram. */
const usersByConfig = new WeakMap<ServerConfig, ReadonlyMap<string, ServerUser>>();

/** `user`'s entry in `config`, if it has one. */
function userEntry(config: ServerConfig, user: string): ServerUser | undefined {
  if (config.users === undefined) return undefined;
  let byName = usersByConfig.get(config);
  if (byName === undefined) {
    byName = new Map(config.users.map((u) => [u.name, u]));
    usersByConfig.set(config, byName);
  }
  return byName.get(user);
}

/**
 * Why `user` may not start a session now, or undefined: past their expiry, over their data
 * limit on this server, or refused by the fleet (over the limit across servers).
 */
function refusal(context: ServerContext, user: string): string | undefined {
  const entry = userEntry(context.config, user);
  if (entry === undefined) return undefined;
  if (entry.refused !== undefined) return entry.refused;
  if (entry.expiresAt !== undefined && Date.now() >= entry.expiresAt) return "user expired";
  if (entry.dataLimit !== undefined && usage(context, user) >= entry.dataLimit) {
    return "user over its data limit";
  }
  return undefined;
}

/**
 * Starts a Shadowsocks server on `config.address:config.port`: TCP, UDP or both by `mode`, on
 * one port number (with port 0, one free for both). Rejects when the port is taken.
 */
// deno-lint-ignore require-await -- async so that a bind or key failure is a rejection, not a throw
export async function startServer(
  config: ServerConfig,
  options: ServerServiceOptions = {},
): Promise<ServerService> {
  const method = findMethod(config.method);
  if (!method) throw new RangeError(`Invalid method "${config.method}"`);
  const replay = {
    saltPool: options.saltPool ?? new SaltPool(),
    replayFilter: options.replayFilter ?? new ReplayFilter(),
  };
  // Keys are parsed before anything is bound: a bad one fails the start (InvalidPskError).
  const framings = serverFramings(method, config.password, { users: config.users, ...replay });
  // Built first: a method without UDP or a bad key fails before anything is bound.
  const udpCodec = config.mode === "tcp_only"
    ? undefined
    : createServerUdpCodec(method, config.password, config.users);
  const logger = options.logger ?? silentLogger;
  const { counters } = options;
  framings.userNames.forEach((name) => counters?.user(name));
  const context: ServerContext = {
    config,
    framings,
    replay,
    liveByUser: new Map(),
    userStats: counters ? counters.stats.users : createUserStats(framings.userNames),
    ...(counters ? { counters } : {}),
    logger,
    observer: loggingObserver("server", logger, { infoStatuses: SERVER_INFO_STATUSES }),
    ...(config.acl ? { acl: new AccessControl(config.acl) } : {}),
    ...(options.fleet ? { fleet: options.fleet } : {}),
    fleetTtlMs: method.family === "aead2022" ? FLEET_TTL_2022_MS : FLEET_TTL_LEGACY_MS,
    clientIps: options.clientIps ?? localGate(new ClientIpWindow()),
  };
  const { listener, socket } = bindTcpAndUdp(config.address, config.port, {
    reusePort: config.reusePort ?? false,
    tcp: config.mode !== "udp_only",
    udp: udpCodec !== undefined,
  });
  let tcp: RunningService | undefined;
  if (listener) {
    tcp = serveConnections(
      listener,
      (conn, signal, countBytes) => serveSession(conn, context, signal, countBytes),
      {
        ...options,
        logger,
        name: "server",
        userStats: context.userStats,
        ...(counters ? { stats: counters.stats } : {}),
      },
    );
  }
  let udp: UdpService | undefined;
  const codecRef = { current: udpCodec };
  if (udpCodec && socket) {
    udp = serveDatagrams(socket, swappable(udpCodec, codecRef), {
      name: "server",
      logger,
      maxAssociations: config.udpMaxAssociations,
      idleTimeoutMs: config.udpTimeout * 1000,
      allowPrivateTargets: config.allowPrivateTargets,
      ipv6First: config.ipv6First,
      userAllowed: (user: string) => refusal(context, user) === undefined,
      ...(context.acl?.checksOutbound
        ? {
          blocked: async (target: Address) =>
            (await context.acl!.checkOutbound(
              target,
              (name) => resolveName(name, config.ipv6First),
            )) === "block",
        }
        : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  if (udp) context.udpStats = udp.stats;
  const service = combineServices(tcp, udp);
  const transports = [tcp && "tcp", udp && "udp"].filter(Boolean).join(" and ");
  logger.info(
    `server listening on ${formatHostPort(service.addr)} (${method.name}, ${transports})`,
  );
  return {
    ...service,
    update: (next) => updateInPlace(context, codecRef, next),
    replaySize: () => context.replay.saltPool.size + context.replay.replayFilter.size,
    replayMemory: () => [context.replay.saltPool, context.replay.replayFilter],
  };
}

/** Options of a server listener. */
export interface ServerServiceOptions extends ServiceOptions {
  /**
   * The AEAD-2017 salt (and stream IV) memory, shared by every listener of a process so that
   * its million salts cost 7 MiB once, not per port; in shared memory when the process runs
   * workers (protocol/shared_replay_store.ts). Default: one of its own.
   */
  replayFilter?: ReplayStore;
  /** The 2022 salt memory; shared by every isolate when the process runs workers. Default: its own. */
  saltPool?: SaltStore;
  /**
   * The TCP counters (totals and per user) in shared memory, this isolate's row: how a listener
   * running in several isolates adds up (service/shared_stats.ts). Default: plain counters.
   */
  counters?: ListenerCounters;
  /**
   * Replay protection shared with other servers (fleet mode): each authenticated request's
   * salt is checked after the local stores; a refused one is handled as a local replay.
   */
  fleet?: FleetReplayCheck;
  /**
   * Decides `max_client_ips`: shared by the listeners of a process (and asked by its workers,
   * and by a fleet's nodes through Redis). Default: a window of this listener's own.
   */
  clientIps?: ClientIpGate;
}

/** A running server listener that a reload can change in place. */
export interface ServerService extends RunningService {
  /**
   * Applies `next` (same address, port, mode and method: anything else needs a new listener)
   * without dropping a session: new sessions use its keys, users and settings, live ones keep
   * theirs, except sessions of users it removes or rekeys, which are closed. Returns one phrase
   * per change; throws (changing nothing) when a key is invalid.
   */
  update(next: ServerConfig): string[];
  /** Salts the replay memory holds now (AEAD-2017 filter and 2022 pool together). */
  replaySize(): number;
  /** The replay stores it uses (one may be shared with other listeners: count each once). */
  replayMemory(): readonly { readonly size: number }[];
}

/**
 * Throws, as starting or updating a listener would, when `config`'s method, key or users cannot
 * be used (a user key of the wrong size, say); builds nothing that lasts.
 */
export function checkListenerKeys(config: ServerConfig): void {
  const method = findMethod(config.method);
  if (!method) throw new RangeError(`Invalid method "${config.method}"`);
  // No session is made, so the replay stores are never called: no 7 MiB filter for a check.
  const unused = {} as SaltStore & ReplayStore;
  serverFramings(method, config.password, {
    users: config.users,
    saltPool: unused,
    replayFilter: unused,
  });
}

/** Whether `next` can be applied to a listener running `current` by `update`. */
export function updatableInPlace(current: ServerConfig, next: ServerConfig): boolean {
  return current.address === next.address && current.port === next.port &&
    current.mode === next.mode && current.method === next.method;
}

function updateInPlace(
  context: ServerContext,
  codecRef: { current: DatagramCodec | undefined },
  next: ServerConfig,
): string[] {
  const current = context.config;
  if (!updatableInPlace(current, next)) throw new RangeError("update needs the same listener");
  const method = findMethod(next.method)!;
  // Everything that can fail is built before anything changes.
  const framings = serverFramings(method, next.password, { users: next.users, ...context.replay });
  const udpCodec = codecRef.current
    ? createServerUdpCodec(method, next.password, next.users)
    : undefined;
  const changes: string[] = [];
  const before = new Map((current.users ?? []).map((u) => [u.name, u.password]));
  const after = new Map((next.users ?? []).map((u) => [u.name, u.password]));
  const added = [...after.keys()].filter((name) => !before.has(name));
  const removed = [...before.keys()].filter((name) => !after.has(name));
  const rekeyed = [...after.keys()].filter((name) =>
    before.has(name) && before.get(name) !== after.get(name)
  );
  if (current.password !== next.password) changes.push("key changed");
  if (added.length) changes.push(`users added: ${added.join(", ")}`);
  if (removed.length) changes.push(`users removed: ${removed.join(", ")}`);
  if (rekeyed.length) changes.push(`users rekeyed: ${rekeyed.join(", ")}`);
  for (
    const key of [
      "timeout",
      "handshakeTimeout",
      "noDelay",
      "allowPrivateTargets",
      "ipv6First",
      "udpTimeout",
      "udpMaxAssociations",
    ] as const
  ) {
    if (current[key] !== next[key]) changes.push(`${key} ${current[key]} → ${next[key]}`);
  }
  if (current.acl !== next.acl) changes.push(next.acl ? "ACL reloaded" : "ACL removed");

  context.config = next;
  context.framings = framings;
  if (udpCodec) codecRef.current = udpCodec;
  if (next.acl) context.acl = new AccessControl(next.acl);
  else delete context.acl;
  for (const name of added) {
    if (context.counters) context.counters.user(name);
    else context.userStats[name] ??= { sessions: 0, bytesUplink: 0, bytesDownlink: 0, lastSeen: 0 };
  }
  // A removed or rekeyed user lost access with the old key: their sessions end. A single-key
  // listener's sessions go on (its port was not removed).
  for (const name of [...removed, ...rekeyed]) cutLive(context, name);
  // A user refused from now on (the fleet's data limit) loses live sessions where a limit
  // crossed here would (`data_limit_cuts_live`).
  const refusedBefore = new Set((current.users ?? []).filter((u) => u.refused).map((u) => u.name));
  const newlyRefused = (next.users ?? []).filter((u) => u.refused && !refusedBefore.has(u.name));
  if (newlyRefused.length) {
    changes.push(
      `users refused: ${newlyRefused.map((u) => `${u.name} (${u.refused})`).join(", ")}`,
    );
  }
  const allowedAgain = (next.users ?? []).filter((u) => !u.refused && refusedBefore.has(u.name));
  if (allowedAgain.length) {
    changes.push(`users allowed again: ${allowedAgain.map((u) => u.name).join(", ")}`);
  }
  if (next.dataLimitCutsLive) {
    for (const { name } of newlyRefused) cutLive(context, name);
  }
  return changes;
}

/** Closes `user`'s live TCP sessions (each then ends with its relay's status). */
function cutLive(context: ServerContext, user: string): void {
  for (const conn of context.liveByUser.get(user) ?? []) closeQuietly(conn);
}

/** A datagram codec whose implementation a reload can swap (same method: same headroom). */
function swappable(
  initial: DatagramCodec,
  ref: { current: DatagramCodec | undefined },
): DatagramCodec {
  return {
    requestHeadroom: initial.requestHeadroom,
    replyHeadroom: initial.replyHeadroom,
    ...(initial.minIdleMs === undefined ? {} : { minIdleMs: initial.minIdleMs }),
    ...(initial.users === undefined ? {} : { users: initial.users }),
    unwrap: (view, from, find) => (ref.current ?? initial).unwrap(view, from, find),
  };
}

async function serveSession(
  conn: Deno.TcpConn,
  context: ServerContext,
  signal: AbortSignal,
  countBytes: ByteCounter,
): Promise<SessionStatus> {
  const { config, logger } = context;
  /** The client as logs write it; formatted only for a line that is written. */
  const peer = () => formatHostPort(conn.remoteAddr);
  const started = Date.now();
  if (context.acl?.checksClients && context.acl.isClientBlocked(conn.remoteAddr.hostname)) {
    // As libev and rust do: a client the ACL refuses is closed at once, before any byte.
    logger.debug(`server ${peer()} ERR_BLOCKED client refused by the ACL`);
    return "ERR_BLOCKED";
  }
  const deadline = new Deadline(config.handshakeTimeout * 1000, () => closeQuietly(conn));
  const stream = new ShadowsocksStream(conn, context.framings.session(conn.remoteAddr.hostname));

  /** Filled in once the request header is read. */
  const who: { user?: string; target?: Address } = {};
  const finish = (status: SessionStatus, detail: string) => {
    if (!context.observer.wants(status)) return status;
    context.observer.sessionEnded({
      peer: peer(),
      status,
      detail,
      durationMs: Date.now() - started,
      ...(who.user === undefined ? {} : { user: who.user }),
      ...(who.target === undefined ? {} : { target: formatAddress(who.target) }),
    });
    return status;
  };

  let request: InboundRequest;
  try {
    request = await stream.readRequest();
  } catch (error) {
    if (deadline.expired) return finish("ERR_TIMEOUT", "handshake deadline passed");
    if (!(error instanceof ProtocolError)) {
      deadline.clear();
      return finish("ERR_RELAY_CLIENT", `handshake read failed: ${errorMessage(error)}`);
    }
    // A TimestampError's message names the skew: "... clock skew of 31 s exceeds ±30 s".
    await drainUntilClosed(conn);
    deadline.clear();
    return finish(error.code, error.message);
  }
  // The fleet's word on the salt (one Redis round trip) is asked now and awaited only before
  // anything the client could observe: the target's connect runs meanwhile, so a fleet adds
  // max(Redis, connect) to the setup rather than their sum. A replay another node saw first
  // may thus open a connection to its target, never sending it a byte.
  const fleetCheck = context.fleet && request.salt
    ? context.fleet.checkSalt(request.salt, context.fleetTtlMs).catch(() => "unavailable")
    : undefined;
  const userStats = request.user === undefined ? undefined : context.userStats[request.user];
  let verdictGiven = false;
  /** The session goes on: it counts as the user's (once). */
  const admitted = (): undefined => {
    if (!verdictGiven && userStats !== undefined) {
      userStats.sessions++;
      userStats.lastSeen = Date.now();
    }
    verdictGiven = true;
    return undefined;
  };
  /**
   * Undefined when the session goes on (no fleet: at once, without a promise, as most servers
   * run); else a promise of the fleet's word: undefined again to go on, or, refused, it runs
   * `beforeDrain` (closing what was opened meanwhile), drains as a replay and finishes.
   */
  const refusedByFleet = (
    beforeDrain?: () => void,
  ): Promise<SessionStatus | undefined> | undefined => {
    if (fleetCheck === undefined) return admitted();
    return fleetCheck.then(async (check) => {
      if (!context.fleet!.refuses(check)) return admitted();
      beforeDrain?.();
      // As a local replay: nothing said, read until the client gives up or the deadline passes.
      const [status, detail] = check === "replay"
        ? ["ERR_REPLAY", "salt seen before by another fleet node: replayed connection"] as const
        : ["ERR_INTERNAL", "fleet unavailable (strict): replay check impossible"] as const;
      if (check !== "replay") logger.warn(`server ${peer()} fleet unavailable: session refused`);
      await drainUntilClosed(conn);
      deadline.clear();
      return finish(status, detail);
    });
  };
  const { address } = request;
  if (request.skew !== undefined && Math.abs(request.skew) >= NOTABLE_SKEW_S) {
    logger.debug(`server ${peer()} client clock skew of ${request.skew} s (accepted up to ±30 s)`);
  }
  const refused = request.user === undefined ? undefined : refusal(context, request.user);
  if (refused !== undefined) {
    const replayed = await refusedByFleet();
    if (replayed) return replayed;
    // Authenticated, so no probe drain: the client is told by the close.
    deadline.clear();
    who.user = request.user!;
    return finish("ERR_AUTH", refused);
  }
  const user = request.user;
  if (user !== undefined) who.user = user;
  const maxIps = user === undefined ? undefined : userEntry(context.config, user)?.maxClientIps;
  if (maxIps !== undefined) {
    // A replay must not take one of the user's places: the fleet's verdict first.
    const replayed = await refusedByFleet();
    if (replayed) return replayed;
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    if (!(await context.clientIps.admit(user!, ip, maxIps))) {
      deadline.clear();
      return finish("ERR_AUTH", `user at max_client_ips (${maxIps}): ${ip} is one too many`);
    }
  }
  who.target = address;
  if (user !== undefined) {
    let live = context.liveByUser.get(user);
    if (!live) context.liveByUser.set(user, live = new Set());
    live.add(conn);
  }
  const counted = withUserCounts(countBytes, userStats, () => {
    if (context.config.dataLimitCutsLive && refusal(context, user!) !== undefined) {
      cutLive(context, user!);
    }
  });
  // Returned, not awaited: a frame of this function would otherwise stay suspended for the
  // session's whole life (bench/throughput.ts, active memory).
  const relayed = relayTo(
    conn,
    stream,
    request,
    context,
    deadline,
    signal,
    counted,
    finish,
    refusedByFleet,
  );
  if (user === undefined) return relayed;
  return relayed.finally(() => {
    const live = context.liveByUser.get(user);
    live?.delete(conn);
    if (live?.size === 0) context.liveByUser.delete(user);
  });
}

/** The second half of a server session: policy, connect, relay. */
async function relayTo(
  conn: Deno.TcpConn,
  stream: ShadowsocksStream,
  request: InboundRequest,
  context: ServerContext,
  deadline: Deadline,
  signal: AbortSignal,
  countBytes: ByteCounter,
  finish: (status: SessionStatus, detail: string) => SessionStatus,
  refusedByFleet: (beforeDrain?: () => void) => Promise<SessionStatus | undefined> | undefined,
): Promise<SessionStatus> {
  const { config } = context;
  const { address, payload: initialPayload } = request;
  const countSession = countBytes;

  if (
    context.acl?.checksOutbound &&
    (await context.acl.checkOutbound(address, (name) => resolveName(name, config.ipv6First))) ===
      "block"
  ) {
    const replayed = await refusedByFleet();
    if (replayed) return replayed;
    deadline.clear();
    return finish("ERR_BLOCKED", `${formatAddress(address)} is on the ACL's outbound block list`);
  }
  let target: Deno.TcpConn;
  try {
    target = await connectDirect(address, {
      allowPrivateTargets: config.allowPrivateTargets,
      ipv6First: config.ipv6First,
      noDelay: config.noDelay,
      signal: deadline.linkedSignal(signal),
    });
  } catch (error) {
    const replayed = await refusedByFleet();
    if (replayed) return replayed;
    deadline.clear();
    const status = error instanceof ProtocolError ? error.code : "ERR_CONNECT";
    return finish(status, errorMessage(error));
  }
  // The target goes first: a held replay must not hold a connection to it too.
  const verdict = refusedByFleet(() => closeQuietly(target));
  const replayed = verdict === undefined ? undefined : await verdict;
  if (replayed) return replayed;
  deadline.clear();
  applyNoDelay(conn, config.noDelay);

  try {
    if (initialPayload.length > 0) await writeAll(target, initialPayload);
  } catch (error) {
    closeQuietly(target);
    return finish("ERR_RELAY_TARGET", errorMessage(error));
  }
  countSession("uplink", initialPayload.length);
  // Returned as a chain rather than awaited: no suspended frame per session (as above).
  return relay(stream, target, {
    idleTimeoutMs: config.timeout * 1000,
    signal,
    onBytes: countSession,
  }).then((status) => finish(status, "relayed"));
}

/** The byte counter of one session: the service totals, and the user's when there is one. */
function withUserCounts(
  countBytes: ByteCounter,
  stats: UserStats | undefined,
  afterCount: () => void,
): ByteCounter {
  if (stats === undefined) return countBytes;
  return (direction, count) => {
    countBytes(direction, count);
    if (direction === "uplink") stats.bytesUplink += count;
    else stats.bytesDownlink += count;
    afterCount();
  };
}

/** Reads and discards until the client closes or the connection is closed under us. */
async function drainUntilClosed(conn: Deno.TcpConn): Promise<void> {
  const sink = new Uint8Array(DRAIN_BUFFER_SIZE);
  try {
    while ((await conn.read(sink)) !== null) {
      // discard
    }
  } catch (error) {
    // The deadline closing the connection ends the drain; that is the expected way out.
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

function formatHostPort(addr: Deno.Addr): string {
  const net = addr as Deno.NetAddr;
  return net.hostname.includes(":")
    ? `[${net.hostname}]:${net.port}`
    : `${net.hostname}:${net.port}`;
}

/** A name's addresses for ACL rules on IPs; a name that does not resolve matches none. */
function resolveName(name: string, ipv6First: boolean): Promise<string[]> {
  return resolveTarget({ type: "domain", host: name, port: 0 }, ipv6First);
}

/*
 * One server listener as configured, plugin included: without a SIP003 plugin it is the server
 * itself on its address; with one, the plugin takes the address (TCP) and hands connections to
 * the server on a loopback port of its own, while UDP, which does not go through a SIP003
 * plugin, stays on the address itself. Both halves count into the same listener. With
 * `plugin_mode: tcp_and_udp` (SIP003u) UDP goes through the plugin as well, to that same port.
 */
/** Starts `config` (with its plugin, if any). */
export async function startListener(
  config: ServerConfig,
  options: ServerServiceOptions & { logger: Logger },
): Promise<ServerService> {
  const plugin = config.plugin;
  if (!plugin) return await startServer(config, options);

  // SIP003u (`plugin_mode: tcp_and_udp`): the plugin carries UDP too, to the same loopback port.
  const udpThroughPlugin = plugin.mode === "tcp_and_udp";
  const innerMode = udpThroughPlugin ? config.mode : "tcp_only";
  const inner = await startServer(
    { ...config, address: "127.0.0.1", port: 0, mode: innerMode },
    options,
  );
  let udp: ServerService | undefined;
  try {
    if (config.mode !== "tcp_only" && !udpThroughPlugin) {
      udp = await startServer({ ...config, mode: "udp_only" }, options);
    }
    const running = startPlugin(plugin, {
      remoteHost: config.address,
      remotePort: config.port,
      localHost: "127.0.0.1",
      localPort: inner.addr.port,
    }, options.logger);
    const closePlugin = () => running.close();
    options.signal?.addEventListener("abort", closePlugin, { once: true });
    const addr: Deno.NetAddr = { transport: "tcp", hostname: config.address, port: config.port };
    const halves: ServerService[] = udp ? [inner, udp] : [inner];
    const service: ServerService = {
      addr,
      stats: inner.stats,
      ...(udp?.udpStats ? { udpStats: udp.udpStats, udpAddr: udp.udpAddr! } : {}),
      ...(udpThroughPlugin && inner.udpStats
        ? { udpStats: inner.udpStats, udpAddr: { ...addr, transport: "udp" as const } }
        : {}),
      closed: Promise.all(halves.map((half) => half.closed)).then(() => {}),
      async close() {
        await Promise.all([closePlugin(), ...halves.map((half) => half.close())]);
      },
      async retire() {
        await closePlugin();
        const retired = await Promise.all(halves.map((half) => half.retire()));
        return { drained: Promise.all(retired.map((r) => r.drained)).then(() => {}) };
      },
      update(next) {
        const changes = inner.update({ ...next, address: "127.0.0.1", port: 0, mode: innerMode });
        udp?.update({ ...next, mode: "udp_only" });
        return changes;
      },
      replaySize: () => halves.reduce((sum, half) => sum + half.replaySize(), 0),
      replayMemory: () => halves.flatMap((half) => half.replayMemory()),
    };
    return service;
  } catch (error) {
    await inner.close();
    await udp?.close();
    throw error;
  }
}

/** Whether a reload can apply `next` to a listener running `current` without replacing it. */
export function listenerUpdatable(current: ServerConfig, next: ServerConfig): boolean {
  return current.address === next.address && current.port === next.port &&
    current.mode === next.mode && current.method === next.method &&
    JSON.stringify(current.plugin ?? null) === JSON.stringify(next.plugin ?? null);
}
