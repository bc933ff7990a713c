/**
 * The accept loop shared by every TCP service: accept, run one session per connection, count
 * its status, and on shutdown stop accepting, give live sessions a grace period, then close them.
 * @module
 */
import { createStatusCounts, type SessionStatus } from "../protocol/errors.ts";

export { createStatusCounts };
import { describeFileLimit, readFileLimit } from "./file_limit.ts";
import { closeQuietly } from "./io.ts";
import type { Logger } from "./log.ts";
import { createLoopErrorCounts, type LoopErrorCounts, LoopGuard } from "./loop_errors.ts";
import type { UdpStats } from "./udp_stats.ts";

/** Counters one service keeps; read by tests and by the stats log. */
export interface ServiceStats {
  /** Sessions ended, by status. */
  readonly statuses: Record<SessionStatus, number>;
  /** Sessions in progress. */
  active: number;
  /** Plaintext bytes client → target and target → client. */
  bytesUplink: number;
  bytesDownlink: number;
  /** Per-user counters of a multi-user (SIP023) server, by user name; empty otherwise. */
  readonly users: Record<string, UserStats>;
  /** Accept errors skipped (a client reset before we took it) or waited out (no descriptors). */
  readonly acceptErrors: LoopErrorCounts;
}

/** Counters of one user of a multi-user server; its sessions also count in the totals. */
export interface UserStats {
  /** Sessions whose request header named this user. */
  sessions: number;
  /** Plaintext bytes of this user's sessions, client → target and target → client. */
  bytesUplink: number;
  bytesDownlink: number;
  /** When the user last started a session (ms since the epoch); 0: never. */
  lastSeen: number;
}

/** Zero counters for each user name; null-prototype, so any user name is a safe key. */
export function createUserStats(names: readonly string[]): Record<string, UserStats> {
  const users: Record<string, UserStats> = Object.create(null);
  for (const name of names) {
    users[name] = { sessions: 0, bytesUplink: 0, bytesDownlink: 0, lastSeen: 0 };
  }
  return users;
}

export function createStats(
  users: Record<string, UserStats> = createUserStats([]),
): ServiceStats {
  return {
    statuses: createStatusCounts(),
    active: 0,
    bytesUplink: 0,
    bytesDownlink: 0,
    users,
    acceptErrors: createLoopErrorCounts(),
  };
}

/** A started service. */
export interface RunningService {
  /** The TCP listener's address (the UDP socket's for a UDP-only service). */
  readonly addr: Deno.NetAddr;
  /** TCP session counters (all zero for a UDP-only service). */
  readonly stats: ServiceStats;
  /** The UDP socket's address, when the service relays UDP. */
  readonly udpAddr?: Deno.NetAddr;
  /** UDP counters, when the service relays UDP. */
  readonly udpStats?: UdpStats;
  /** Resolves when the service has stopped and every session has ended. */
  readonly closed: Promise<void>;
  /** Stops accepting, waits for sessions (up to the grace period), then closes them. */
  close(): Promise<void>;
  /**
   * Stops accepting but lets live sessions run to their natural end: how a reload replaces a
   * listener without cutting anyone. Resolves once the port is free (the listening socket is
   * really closed only when its pending accept has ended), with `drained`, which resolves when
   * the last session has ended. A later `close` still cuts what is left after its grace period.
   */
  retire(): Promise<{ drained: Promise<void> }>;
}

export interface ServiceOptions {
  signal?: AbortSignal;
  logger?: Logger;
  /** How long live sessions may go on after shutdown starts. Default 5000 ms. */
  graceMs?: number;
}

/** Counts relayed plaintext bytes into the service's stats. */
export type ByteCounter = (direction: "uplink" | "downlink", count: number) => void;

/**
 * One session: handles a connection and returns how it ended. `signal` fires on shutdown;
 * `countBytes` adds to the service's byte counters.
 */
export type SessionHandler = (
  conn: Deno.TcpConn,
  signal: AbortSignal,
  countBytes: ByteCounter,
) => Promise<SessionStatus>;

/** Runs `handler` for every connection accepted on `listener` until shutdown. */
export function serveConnections(
  listener: Deno.TcpListener,
  handler: SessionHandler,
  options: ServiceOptions & {
    name: string;
    logger: Logger;
    /** Per-user counters the handler fills, exposed as `stats.users`. Default: none. */
    userStats?: Record<string, UserStats>;
    /**
     * The counters to count into, `userStats` being ignored: e.g. this isolate's row of
     * counters in shared memory (service/shared_stats.ts). Default: new ones.
     */
    stats?: ServiceStats;
  },
): RunningService {
  const stats = options.stats ?? createStats(options.userStats);
  // The live connections, closed at shutdown: a Set entry per session is lighter than an abort
  // listener per session, and idle sessions are what a server holds most of.
  const live = new Set<Deno.TcpConn>();
  /** Resolves once `live` is empty; made when shutdown starts. */
  let drained: PromiseWithResolvers<void> | undefined;
  const shutdown = new AbortController();
  const { logger, name } = options;
  const graceMs = options.graceMs ?? 5000;

  const countBytes: ByteCounter = (direction, count) => {
    if (direction === "uplink") stats.bytesUplink += count;
    else stats.bytesDownlink += count;
  };

  const sessionEnded = (conn: Deno.TcpConn, status: SessionStatus) => {
    live.delete(conn);
    stats.active--;
    closeQuietly(conn);
    if (live.size === 0) drained?.resolve();
    stats.statuses[status]++;
  };
  const sessionFailed = (conn: Deno.TcpConn, error: unknown) => {
    // A handler maps every expected failure to a status; anything reaching here is a bug
    // worth a human's eye, but it must not take the service down.
    logger.error(`${name}: session failed unexpectedly: ${(error as Error)?.stack ?? error}`);
    sessionEnded(conn, "ERR_RELAY_CLIENT");
  };
  // A `then` rather than an async function awaiting the handler: an idle session then holds
  // two small closures instead of a suspended frame (bench/throughput.ts, idle memory).
  const runSession = (conn: Deno.TcpConn) => {
    stats.active++;
    live.add(conn);
    let session: Promise<SessionStatus>;
    try {
      session = handler(conn, shutdown.signal, countBytes);
    } catch (error) {
      session = Promise.reject(error);
    }
    session.then(
      (status) => sessionEnded(conn, status),
      (error) => sessionFailed(conn, error),
    );
  };

  // Aborted when shutdown starts, before the listener closes: ends an accept pause at once.
  const stopAccepting = new AbortController();
  // Read now: with no descriptors left, reading the file limit would itself fail.
  const fileLimit = describeFileLimit(readFileLimit());
  const acceptLoop = async () => {
    const guard = new LoopGuard({
      name: `${name} accept`,
      logger,
      signal: stopAccepting.signal,
      counts: stats.acceptErrors,
      hint: fileLimit,
    });
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (await guard.failed(error)) continue;
        return;
      }
      guard.succeeded();
      runSession(conn);
    }
  };
  const accepting = acceptLoop();

  const stopped = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const stopAcceptingNow = async () => {
    stopAccepting.abort();
    closeQuietly(listener);
    await accepting;
    if (!drained) {
      drained = Promise.withResolvers<void>();
      if (live.size === 0) drained.resolve();
    }
  };
  let retiring: Promise<{ drained: Promise<void> }> | undefined;
  const retire = () =>
    retiring ??= (async () => {
      await stopAcceptingNow();
      const done = drained!.promise.then(() => stopped.resolve());
      return { drained: done };
    })();
  const close = () =>
    closing ??= (async () => {
      await stopAcceptingNow();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([drained!.promise, grace]);
      clearTimeout(timer);
      shutdown.abort();
      for (const conn of live) closeQuietly(conn);
      await drained!.promise;
      stopped.resolve();
    })();

  options.signal?.addEventListener("abort", () => close(), { once: true });
  if (options.signal?.aborted) close();
  return { addr: listener.addr, stats, closed: stopped.promise, close, retire };
}

/** The UDP half of a service: a datagram relay with the same lifecycle as `RunningService`. */
export interface UdpService {
  readonly addr: Deno.NetAddr;
  readonly stats: UdpStats;
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * Joins the TCP and UDP halves of one service (`mode`) into one `RunningService`; at least one
 * must be given. Closing it closes both.
 */
export function combineServices(
  tcp: RunningService | undefined,
  udp: UdpService | undefined,
): RunningService {
  if (!tcp && !udp) throw new RangeError("Invalid service: neither TCP nor UDP is running");
  if (!udp) return tcp!;
  const close = async () => {
    await Promise.all([tcp?.close(), udp.close()]);
  };
  const closed = Promise.all([tcp?.closed, udp.closed]).then(() => {});
  // UDP has no sessions to wait for beyond its associations, which a reload lets go.
  const retire = async () => {
    const [retired] = await Promise.all([tcp?.retire(), udp.close()]);
    return { drained: retired?.drained ?? Promise.resolve() };
  };
  return {
    addr: tcp?.addr ?? udp.addr,
    stats: tcp?.stats ?? createStats(),
    udpAddr: udp.addr,
    udpStats: udp.stats,
    closed,
    close,
    retire,
  };
}
