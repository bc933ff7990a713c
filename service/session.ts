/**
 * The one straight line every client-side TCP session runs:
 *
 * ```
 * inbound.accept → router.route → outbound.connect → request.reply → relay → observer.sessionEnded
 * ```
 *
 * The handshake deadline covers everything up to the reply (a stalled application, a slow
 * server); the idle timeout covers the relay. Every way out ends in exactly one status.
 * @module
 */
import { type Address, formatAddress } from "../protocol/address.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import type { DialedConnection, Inbound } from "../inbound/inbound.ts";
import type { Router } from "../route/router.ts";
import { BufferedConn } from "../relay/buffered_conn.ts";
import { Deadline } from "../relay/deadline.ts";
import { applyNoDelay, closeQuietly } from "../relay/io.ts";
import { relay } from "../relay/pipe.ts";
import type { ByteCounter } from "../relay/service.ts";
import type { Observer } from "./observer.ts";

export interface SessionSetup {
  readonly inbound: Inbound;
  readonly router: Router;
  readonly observer: Observer;
  /** From accept to the reply to the application. */
  readonly handshakeMs: number;
  /** A relay with no byte either way for this long ends with `ERR_TIMEOUT`. */
  readonly idleMs: number;
  readonly noDelay: boolean;
}

/** Runs one accepted connection to its end and returns its status. */
export async function runSession(
  conn: Deno.TcpConn,
  setup: SessionSetup,
  signal: AbortSignal,
  countBytes: ByteCounter,
): Promise<SessionStatus> {
  const started = performance.now();
  /** What is known of the session so far, formatted only when its outcome is wanted. */
  const known: { target?: Address; user?: string; via?: string } = {};
  /** A `handled` inbound's own words on target and user. */
  let reported: { target?: string; user?: string } = {};
  const finish = (status: SessionStatus, detail: string): SessionStatus => {
    if (!setup.observer.wants(status)) return status;
    const { hostname, port } = conn.remoteAddr;
    setup.observer.sessionEnded({
      ...reported,
      ...(known.target === undefined ? {} : { target: formatAddress(known.target) }),
      ...(known.user === undefined ? {} : { user: known.user }),
      ...(known.via === undefined ? {} : { via: known.via }),
      peer: formatAddress({ type: hostname.includes(":") ? "ipv6" : "ipv4", host: hostname, port }),
      status,
      detail,
      durationMs: Math.round(performance.now() - started),
    });
    return status;
  };
  const deadline = new Deadline(setup.handshakeMs, () => closeQuietly(conn));
  const client = new BufferedConn(conn);

  let accepted;
  try {
    accepted = await setup.inbound.accept(client, conn);
  } catch (error) {
    deadline.clear();
    if (deadline.expired) return finish("ERR_TIMEOUT", "handshake deadline passed");
    if (error instanceof ProtocolError) return finish(error.code, error.message);
    return finish("ERR_RELAY_CLIENT", errorMessage(error));
  }
  if (accepted.kind === "handled") {
    deadline.clear();
    const ran = await accepted.run(signal, countBytes);
    reported = {
      ...(ran.target === undefined ? {} : { target: ran.target }),
      ...(ran.user === undefined ? {} : { user: ran.user }),
    };
    return finish(ran.status, ran.detail);
  }

  const request = accepted;
  known.target = request.target;
  if (request.user !== undefined) known.user = request.user;
  const refuse = async (status: SessionStatus, error: unknown) => {
    deadline.clear();
    await request.reply({ status, error });
    return finish(status, errorMessage(error));
  };

  let connection;
  try {
    connection = await dial(setup.router, request.target, request.user, {
      signal: deadline.linkedSignal(signal),
      deadline,
    });
  } catch (error) {
    return await refuse(error instanceof ProtocolError ? error.code : "ERR_CONNECT", error);
  }
  if (connection.via !== undefined) known.via = connection.via;

  let app;
  try {
    app = await request.reply({ bound: connection.bound });
  } catch (error) {
    closeQuietly(connection.stream);
    deadline.clear();
    return finish("ERR_RELAY_CLIENT", errorMessage(error));
  } finally {
    deadline.clear();
  }
  if (app === undefined) {
    closeQuietly(connection.stream);
    return finish("ERR_INTERNAL", "the inbound accepted a success reply without a stream");
  }
  applyNoDelay(conn, setup.noDelay);
  // Returned as a chain rather than awaited: no suspended frame for the session's whole life
  // (bench/throughput.ts, active memory).
  return relay(app, connection.stream, {
    idleTimeoutMs: setup.idleMs,
    signal,
    onBytes: countBytes,
  }).then((status) => finish(status, "relayed"));
}

/**
 * Routes `target` and connects through the chosen outbound. Every failure is a `ProtocolError`
 * whose code is the session status: `ERR_BLOCKED` (ACL), `ERR_TIMEOUT` (the deadline passed),
 * the outbound's own code (`ERR_RESOLVE`, `ERR_TARGET_FORBIDDEN`, …), else `ERR_CONNECT`.
 */
export async function dial(
  router: Router,
  target: Address,
  user: string | undefined,
  options: { signal: AbortSignal; deadline?: Deadline },
): Promise<DialedConnection> {
  let route;
  try {
    route = await router.route(target, user);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError("ERR_RESOLVE", errorMessage(error), { cause: error });
  }
  if (route === "block") throw new ProtocolError("ERR_BLOCKED", "blocked by the ACL");
  try {
    const connection = await route.connect(target, { signal: options.signal });
    return { ...connection, via: connection.via ?? route.name };
  } catch (error) {
    if (options.deadline?.expired) {
      throw new ProtocolError("ERR_TIMEOUT", "handshake deadline passed while connecting", {
        cause: error,
      });
    }
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError("ERR_CONNECT", errorMessage(error), { cause: error });
  }
}
