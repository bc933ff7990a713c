/**
 * The HTTP proxy inbound (NOTES-2 §17): `CONNECT host:port` becomes a tunnel through the
 * session line; absolute-form requests (`GET http://host/path`) are forwarded one by one on a
 * kept-alive client connection, each routed and connected on its own (several target hosts on
 * one connection), with hop-by-hop fields removed and the body passed through with its framing.
 *
 * Each upstream connection carries one request (`Connection: close` upstream): no pool, so no
 * request can ever be answered by another target's stale connection. Credentials
 * (`Proxy-Authorization: Basic`) are checked on every request when users are configured (407
 * otherwise). Failures get honest statuses: 400 malformed, 403 blocked or forbidden, 407, 502
 * connect or upstream failure, 504 timeout; after an error the connection closes.
 * @module
 */
import { type Address, formatAddress } from "../protocol/address.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import {
  basicCredentials,
  type BodyFraming,
  ChunkedScanner,
  connectEstablished,
  errorResponse,
  forwardRequestHead,
  forwardResponseHead,
  HttpError,
  MAX_HEAD_SIZE,
  parseRequestHead,
  parseResponseHead,
  proxyRequestTarget,
  type ProxyTarget,
  requestBodyFraming,
  type RequestHead,
  responseBodyFraming,
  type ResponseFraming,
} from "../protocol/http_proxy.ts";
import { credentialsMatch } from "../protocol/socks5_auth.ts";
import { BufferedConn } from "../relay/buffered_conn.ts";
import { closeQuietly, type Duplex, writeAll } from "../relay/io.ts";
import { relay } from "../relay/pipe.ts";
import type { Accepted, Dial, Inbound, ReplyResult } from "./inbound.ts";
import { sendQuietly } from "./reply.ts";

/** Bytes moved per read while passing a body through. */
const BODY_BUFFER_SIZE = 16 * 1024;

export interface HttpOptions {
  /** Users and passwords: when set, every request needs `Proxy-Authorization: Basic`. */
  readonly users?: ReadonlyMap<string, string>;
  /** Routes and connects forwarded requests (the session line does it for CONNECT). */
  readonly dial: Dial;
  /** How long a request head (after the first) or a dial may take. */
  readonly handshakeMs: number;
  /** How long a kept-alive connection or a body may stay silent. */
  readonly idleMs: number;
}

type Counter = (direction: "uplink" | "downlink", count: number) => void;

/** The HTTP status that tells a client why its request failed. */
export function httpStatusFor(status: SessionStatus): number {
  switch (status) {
    case "ERR_BLOCKED":
    case "ERR_TARGET_FORBIDDEN":
      return 403;
    case "ERR_AUTH":
      return 407;
    case "ERR_TIMEOUT":
      return 504;
    case "ERR_READ_ADDRESS":
    case "ERR_CLIENT_PROTOCOL":
      return 400;
    default:
      return 502;
  }
}

export class HttpInbound implements Inbound {
  readonly #options: HttpOptions;

  constructor(options: HttpOptions) {
    this.#options = options;
  }

  async accept(client: BufferedConn, conn: Deno.TcpConn): Promise<Accepted> {
    const { head, target, user } = await this.#readRequest(client, conn);
    if (target.kind === "connect") {
      return {
        kind: "connect",
        target: target.address,
        ...(user === undefined ? {} : { user }),
        reply: (result) => this.#replyConnect(client, conn, head, result),
      };
    }
    return {
      kind: "handled",
      run: (signal, countBytes) =>
        this.#forwardAll(client, conn, { head, target, user }, signal, countBytes),
    };
  }

  /**
   * Reads one request head, authenticates it and finds its target. Answers and throws
   * (`ProtocolError`) on anything wrong.
   */
  async #readRequest(client: BufferedConn, conn: Deno.TcpConn) {
    let head: RequestHead;
    try {
      head = await client.parse(parseRequestHead, MAX_HEAD_SIZE);
    } catch (error) {
      if (error instanceof HttpError) await sendQuietly(conn, errorResponse(error.status));
      throw error;
    }
    const user = this.#authenticate(head);
    if (user === null) {
      await sendQuietly(conn, errorResponse(407, { method: head.method }));
      throw new ProtocolError("ERR_AUTH", "missing or wrong Proxy-Authorization");
    }
    let target: ProxyTarget;
    try {
      target = proxyRequestTarget(head);
      if (target.kind === "forward") requestBodyFraming(head);
    } catch (error) {
      if (error instanceof HttpError) {
        await sendQuietly(conn, errorResponse(error.status, { method: head.method }));
      }
      throw error;
    }
    return { head, target, user };
  }

  /** The user of the request; `undefined` when no users are configured; null: refuse (407). */
  #authenticate(head: RequestHead): string | undefined | null {
    const users = this.#options.users;
    if (users === undefined || users.size === 0) return undefined;
    const credentials = basicCredentials(head);
    if (!credentials) return null;
    return credentialsMatch(users, credentials.user, credentials.password)
      ? credentials.user
      : null;
  }

  async #replyConnect(
    client: BufferedConn,
    conn: Deno.TcpConn,
    head: RequestHead,
    result: ReplyResult,
  ): Promise<Duplex | undefined> {
    if ("bound" in result) {
      await writeAll(conn, connectEstablished());
      return client;
    }
    await sendQuietly(conn, errorResponse(httpStatusFor(result.status), { method: head.method }));
    return undefined;
  }

  /**
   * Forwards requests until the client or a response ends the connection. A CONNECT that comes
   * after forwarded requests on the same connection becomes a tunnel, as its own would.
   */
  async #forwardAll(
    client: BufferedConn,
    conn: Deno.TcpConn,
    first: { head: RequestHead; target: ProxyTarget; user: string | undefined },
    signal: AbortSignal,
    countBytes: Counter,
  ): Promise<{ status: SessionStatus; detail: string; target?: string; user?: string }> {
    // The log line names the first request's target and user (later ones may differ).
    const who = {
      target: formatAddress(first.target.address),
      ...(first.user === undefined ? {} : { user: first.user }),
    };
    let request = first;
    for (let count = 1;; count++) {
      const outcome = await this.#forwardOne(client, conn, request, signal, countBytes);
      if (outcome.status !== "OK" || !outcome.keepAlive) {
        return { ...who, status: outcome.status, detail: `${outcome.detail} (${count} requests)` };
      }
      // Wait for the next request: the idle timeout until its first byte, then the deadline.
      const next = await this.#nextRequest(client, conn);
      if (next === "end") return { ...who, status: "OK", detail: `${count} requests` };
      request = next;
      if (request.target.kind === "connect") {
        const status = await this.#tunnel(client, conn, request, signal, countBytes);
        return { ...who, status, detail: `CONNECT after ${count} requests` };
      }
    }
  }

  async #nextRequest(client: BufferedConn, conn: Deno.TcpConn) {
    // A silent client past the idle timeout, or one that closed: the connection is done.
    if (await client.waitForFirstBytes(this.#options.idleMs) !== "data") return "end" as const;
    return await withDeadline(
      this.#readRequest(client, conn),
      this.#options.handshakeMs,
      () => closeQuietly(conn),
    );
  }

  async #tunnel(
    client: BufferedConn,
    conn: Deno.TcpConn,
    request: { head: RequestHead; target: ProxyTarget; user: string | undefined },
    signal: AbortSignal,
    countBytes: Counter,
  ): Promise<SessionStatus> {
    let upstream;
    try {
      upstream = await this.#dialWithin(request.target.address, request.user, signal);
    } catch (error) {
      const status = error instanceof ProtocolError ? error.code : "ERR_CONNECT";
      await sendQuietly(conn, errorResponse(httpStatusFor(status)));
      return status;
    }
    try {
      await writeAll(conn, connectEstablished());
    } catch (error) {
      closeQuietly(upstream.stream);
      if (error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset) {
        return "ERR_RELAY_CLIENT";
      }
      throw error;
    }
    return await relay(client, upstream.stream, {
      idleTimeoutMs: this.#options.idleMs,
      signal,
      onBytes: countBytes,
    });
  }

  #dialWithin(target: Address, user: string | undefined, signal: AbortSignal) {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#options.handshakeMs);
    const onAbort = () => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    return this.#options.dial(target, user, controller.signal).catch((error) => {
      if (timedOut) throw new ProtocolError("ERR_TIMEOUT", "no connection in time");
      throw error;
    }).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    });
  }

  /** One forwarded request and its response. */
  async #forwardOne(
    client: BufferedConn,
    conn: Deno.TcpConn,
    request: { head: RequestHead; target: ProxyTarget; user: string | undefined },
    signal: AbortSignal,
    countBytes: Counter,
  ): Promise<{ status: SessionStatus; detail: string; keepAlive: boolean }> {
    const { head, target } = request;
    if (target.kind !== "forward") throw new Error("a CONNECT reached the forwarder");
    const keepAliveWanted = wantsKeepAliveSafely(head);
    const requestFraming = requestBodyFraming(head);
    let upstream;
    try {
      upstream = await this.#dialWithin(target.address, request.user, signal);
    } catch (error) {
      const status = error instanceof ProtocolError ? error.code : "ERR_CONNECT";
      await sendQuietly(conn, errorResponse(httpStatusFor(status), { method: head.method }));
      return { status, detail: errorMessage(error), keepAlive: false };
    }
    const idle = new IdleGuard(this.#options.idleMs, () => {
      closeQuietly(upstream.stream);
      closeQuietly(conn);
    });
    const onAbort = () => idle.fire();
    signal.addEventListener("abort", onAbort, { once: true });
    let answered = false;
    try {
      const sent = forwardRequestHead(head, target, { keepAlive: false });
      await writeAll(upstream.stream, sent);
      countBytes("uplink", sent.length);
      const uploading = copyBody(client, upstream.stream, requestFraming, "request", (n) => {
        idle.touch();
        countBytes("uplink", n);
      });
      // A failed upload shows up as a failed response read; its own error is reported below.
      uploading.catch(() => {});
      const fromUpstream = new BufferedConn(upstream.stream);
      let response = await fromUpstream.parse(parseResponseHead, MAX_HEAD_SIZE);
      while (response.status >= 100 && response.status < 200 && response.status !== 101) {
        // Interim responses (100 Continue, 103 Early Hints) go to the client as they come.
        const interim = forwardResponseHead(response, true);
        await writeAll(conn, interim);
        countBytes("downlink", interim.length);
        response = await fromUpstream.parse(parseResponseHead, MAX_HEAD_SIZE);
      }
      if (response.status === 101) {
        throw new HttpError(502, "Upstream switched protocols, which this proxy does not carry", {
          code: "ERR_RELAY_TARGET",
        });
      }
      const responseFraming = responseBodyFraming(head.method, response);
      const keepAlive = keepAliveWanted && responseFraming.kind !== "close";
      const responseHead = forwardResponseHead(response, keepAlive);
      await writeAll(conn, responseHead);
      answered = true;
      countBytes("downlink", responseHead.length);
      await copyBody(fromUpstream, conn, responseFraming, "response", (n) => {
        idle.touch();
        countBytes("downlink", n);
      });
      await uploading;
      return { status: "OK", detail: `${head.method} ${response.status}`, keepAlive };
    } catch (error) {
      const status = idle.fired
        ? (signal.aborted ? "ERR_SHUTDOWN" : "ERR_TIMEOUT")
        : error instanceof ProtocolError
        ? error.code
        : "ERR_RELAY_TARGET";
      if (!answered) {
        const code = error instanceof HttpError ? error.status : httpStatusFor(status);
        await sendQuietly(conn, errorResponse(code, { method: head.method }));
      }
      return { status, detail: errorMessage(error), keepAlive: false };
    } finally {
      idle.clear();
      signal.removeEventListener("abort", onAbort);
      closeQuietly(upstream.stream);
    }
  }
}

/** `wantsKeepAlive` without throwing: a malformed Connection field means close. */
function wantsKeepAliveSafely(head: RequestHead): boolean {
  return head.version === "HTTP/1.1" &&
    !head.fields.some((f) =>
      /^(proxy-)?connection$/i.test(f.name) && /(^|,)\s*close\s*(,|$)/i.test(f.value)
    );
}

/**
 * Passes one message body from `from` to `to` by its framing, unchanged: exactly `length`
 * bytes, a chunked body up to its end (bytes read past it go back to `from`), or everything
 * until `from` ends. Throws when `from` ends early.
 */
async function copyBody(
  from: BufferedConn,
  to: Pick<Duplex, "write">,
  framing: BodyFraming | ResponseFraming,
  side: "request" | "response",
  onBytes: (n: number) => void,
): Promise<void> {
  if (framing.kind === "none") return;
  const buffer = new Uint8Array(BODY_BUFFER_SIZE);
  if (framing.kind === "length") {
    let left = framing.length;
    while (left > 0) {
      const n = await from.read(buffer.subarray(0, Math.min(left, buffer.length)));
      if (n === null) throw new ProtocolError(endStatus(side), `${side} body ended early`);
      await writeAll(to, buffer.subarray(0, n));
      onBytes(n);
      left -= n;
    }
    return;
  }
  if (framing.kind === "close") {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) return;
      await writeAll(to, buffer.subarray(0, n));
      onBytes(n);
    }
  }
  const scanner = new ChunkedScanner({ side });
  for (;;) {
    const n = await from.read(buffer);
    if (n === null) throw new ProtocolError(endStatus(side), `${side} body ended early`);
    const used = scanner.feed(buffer.subarray(0, n));
    const body = used < 0 ? n : used;
    await writeAll(to, buffer.subarray(0, body));
    onBytes(body);
    if (used >= 0) {
      from.unread(buffer.slice(used, n));
      return;
    }
  }
}

function endStatus(side: "request" | "response"): "ERR_RELAY_CLIENT" | "ERR_RELAY_TARGET" {
  return side === "request" ? "ERR_RELAY_CLIENT" : "ERR_RELAY_TARGET";
}

/** Fires `onIdle` once after `ms` without a `touch`. */
class IdleGuard {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #fired = false;
  readonly #ms: number;
  readonly #onIdle: () => void;

  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
    this.touch();
  }

  get fired(): boolean {
    return this.#fired;
  }

  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.fire(), this.#ms);
  }

  fire(): void {
    if (this.#fired) return;
    this.#fired = true;
    clearTimeout(this.#timer);
    this.#onIdle();
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** `promise`, with `onExpire` run (which must make it settle) if it takes longer than `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number, onExpire: () => void): Promise<T> {
  const timer = setTimeout(onExpire, ms);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
  }
}
