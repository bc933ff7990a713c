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
import { formatAddress } from "../protocol/address.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import type { Inbound } from "../inbound/inbound.ts";
import type { Router } from "../route/router.ts";
import { BufferedConn } from "../relay/buffered_conn.ts";
import { Deadline } from "../relay/deadline.ts";
import { closeQuietly } from "../relay/io.ts";
import { relay } from "../relay/pipe.ts";
import type { ByteCounter } from "../relay/service.ts";
import type { Observer, Outcome } from "./observer.ts";

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
  const peer = formatAddress({
    type: conn.remoteAddr.hostname.includes(":") ? "ipv6" : "ipv4",
    host: conn.remoteAddr.hostname,
    port: conn.remoteAddr.port,
  });
  let outcome: Omit<Outcome, "status" | "detail" | "durationMs" | "peer"> = {};
  const finish = (status: SessionStatus, detail: string): SessionStatus => {
    setup.observer.sessionEnded({
      ...outcome,
      peer,
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
    const { status, detail } = await accepted.run(signal);
    return finish(status, detail);
  }

  const request = accepted;
  outcome = {
    target: formatAddress(request.target),
    ...(request.user === undefined ? {} : { user: request.user }),
  };
  const refuse = async (status: SessionStatus, error: unknown) => {
    deadline.clear();
    await request.reply({ status, error }).catch(() => {});
    return finish(status, errorMessage(error));
  };

  let route;
  try {
    route = await setup.router.route(request.target, request.user);
  } catch (error) {
    return await refuse(error instanceof ProtocolError ? error.code : "ERR_RESOLVE", error);
  }
  if (route === "block") return await refuse("ERR_BLOCKED", new Error("blocked by the ACL"));
  outcome = { ...outcome, via: route.name };

  let connection;
  try {
    connection = await route.connect(request.target, { signal: deadline.linkedSignal(signal) });
  } catch (error) {
    const status = deadline.expired
      ? "ERR_TIMEOUT"
      : error instanceof ProtocolError
      ? error.code
      : "ERR_CONNECT";
    return await refuse(status, error);
  }

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
  conn.setNoDelay(setup.noDelay);
  const status = await relay(app, connection.stream, {
    idleTimeoutMs: setup.idleMs,
    signal,
    onBytes: countBytes,
  });
  return finish(status, "relayed");
}
