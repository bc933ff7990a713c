/**
 * The accept loop shared by every TCP service: accept, run one session per connection, count
 * its status, and on shutdown stop accepting, give live sessions a grace period, then close them.
 * @module
 */
import type { SessionStatus } from "../protocol/errors.ts";
import { closeQuietly } from "./io.ts";
import type { Logger } from "./log.ts";

/** Counters one service keeps; read by tests and by the stats log. */
export interface ServiceStats {
  /** Sessions ended, by status. */
  readonly statuses: Record<SessionStatus, number>;
  /** Sessions in progress. */
  active: number;
  /** Plaintext bytes client → target and target → client. */
  bytesUplink: number;
  bytesDownlink: number;
}

export function createStats(): ServiceStats {
  return {
    statuses: {
      OK: 0,
      ERR_CIPHER: 0,
      ERR_REPLAY: 0,
      ERR_READ_ADDRESS: 0,
      ERR_TARGET_FORBIDDEN: 0,
      ERR_CONNECT: 0,
      ERR_RELAY_CLIENT: 0,
      ERR_RELAY_TARGET: 0,
      ERR_TIMEOUT: 0,
    },
    active: 0,
    bytesUplink: 0,
    bytesDownlink: 0,
  };
}

/** A started service. */
export interface RunningService {
  readonly addr: Deno.NetAddr;
  readonly stats: ServiceStats;
  /** Resolves when the service has stopped and every session has ended. */
  readonly closed: Promise<void>;
  /** Stops accepting, waits for sessions (up to the grace period), then closes them. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  signal?: AbortSignal;
  logger?: Logger;
  /** How long live sessions may go on after shutdown starts. Default 5000 ms. */
  graceMs?: number;
}

/** One session: handles a connection and returns how it ended. `signal` fires on shutdown. */
export type SessionHandler = (conn: Deno.TcpConn, signal: AbortSignal) => Promise<SessionStatus>;

/** Runs `handler` for every connection accepted on `listener` until shutdown. */
export function serveConnections(
  listener: Deno.TcpListener,
  handler: SessionHandler,
  options: ServiceOptions & { name: string; logger: Logger },
): RunningService {
  const stats = createStats();
  const sessions = new Set<Promise<void>>();
  const shutdown = new AbortController();
  const { logger, name } = options;
  const graceMs = options.graceMs ?? 5000;

  const runSession = async (conn: Deno.TcpConn) => {
    stats.active++;
    const onShutdown = () => closeQuietly(conn);
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    let status: SessionStatus;
    try {
      status = await handler(conn, shutdown.signal);
    } catch (error) {
      // A handler maps every expected failure to a status; anything reaching here is a bug
      // worth a human's eye, but it must not take the service down.
      logger.error(`${name}: session failed unexpectedly: ${(error as Error)?.stack ?? error}`);
      status = "ERR_RELAY_CLIENT";
    } finally {
      shutdown.signal.removeEventListener("abort", onShutdown);
      stats.active--;
      closeQuietly(conn);
    }
    stats.statuses[status]++;
  };

  const acceptLoop = async () => {
    try {
      for await (const conn of listener) {
        const session = runSession(conn);
        sessions.add(session);
        session.finally(() => sessions.delete(session));
      }
    } catch (error) {
      if (!shutdown.signal.aborted) logger.error(`${name}: accept failed: ${error}`);
    }
  };
  const accepting = acceptLoop();

  const stopped = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closeQuietly(listener);
      await accepting;
      const grace = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        Promise.allSettled([...sessions]).then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await grace;
      shutdown.abort();
      await Promise.allSettled([...sessions]);
      stopped.resolve();
    })();

  options.signal?.addEventListener("abort", () => close(), { once: true });
  if (options.signal?.aborted) close();
  return { addr: listener.addr, stats, closed: stopped.promise, close };
}
