/**
 * The inbound seam: what turns an accepted connection into a request. An inbound reads its own
 * protocol (SOCKS5, SOCKS4, HTTP, a tunnel's fixed target) and reports the target; the session
 * (service/session.ts) then routes and connects, and hands the result back through `reply`,
 * where the inbound speaks its own success or error reply (SOCKS REP codes, HTTP statuses).
 * @module
 */
import type { Address } from "../protocol/address.ts";
import type { SessionStatus } from "../protocol/errors.ts";
import type { BufferedConn } from "../relay/buffered_conn.ts";
import type { Duplex } from "../relay/io.ts";

/** The outcome of routing and connecting, as the inbound must report it to the application. */
export type ReplyResult =
  | { readonly bound: Deno.NetAddr }
  | { readonly status: SessionStatus; readonly error: unknown };

/** One target the application asked for. */
export interface InboundRequest {
  readonly kind: "connect";
  readonly target: Address;
  /** The application's user, when the inbound authenticated one. */
  readonly user?: string;
  /**
   * Sends the reply. On success resolves to the application's side of the relay (the buffered
   * connection, with any bytes the application sent early); on an error reply, to nothing.
   */
  reply(result: ReplyResult): Promise<Duplex | undefined>;
}

/**
 * A session the inbound runs to its end itself: a SOCKS5 UDP association, or an HTTP client
 * connection carrying forward-proxy requests for several targets.
 */
export interface HandledSession {
  readonly kind: "handled";
  run(
    signal: AbortSignal,
    countBytes: (direction: "uplink" | "downlink", count: number) => void,
  ): Promise<{ status: SessionStatus; detail: string; target?: string; user?: string }>;
}

/** A connection to a target that the session's router and outbound made. */
export interface DialedConnection {
  readonly stream: Duplex;
  readonly bound: Deno.NetAddr;
  /** The outbound's name, for the log line. */
  readonly via: string;
}

/**
 * Routes and connects `target` for an inbound that makes several connections in one session
 * (HTTP forward proxying). Throws `ProtocolError` whose code is the status: `ERR_BLOCKED`,
 * `ERR_RESOLVE`, `ERR_CONNECT`, `ERR_TIMEOUT`, …
 */
export type Dial = (
  target: Address,
  user: string | undefined,
  signal: AbortSignal,
) => Promise<DialedConnection>;

export type Accepted = InboundRequest | HandledSession;

export interface Inbound {
  /**
   * Reads the application's request from `client` (the buffered `conn`). Throws
   * `ProtocolError` (its code is the session status) after sending whatever reply the protocol
   * has for the failure.
   */
  accept(client: BufferedConn, conn: Deno.TcpConn): Promise<Accepted>;
}
