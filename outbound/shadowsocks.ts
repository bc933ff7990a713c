/**
 * The Shadowsocks outbound: dial one server, and send the session's first flight (salt, request
 * header and the application's first bytes) in one write. The connection is made before the
 * application is answered, but the first flight waits for the application's first bytes, up to
 * `FIRST_PAYLOAD_WAIT_MS` after the relay starts: client-first protocols (HTTP, TLS) send within
 * that, server-first ones (SMTP, SSH banners) pay it once per connection.
 * @module
 */
import { type Address, addressFromHost, formatAddress } from "../protocol/address.ts";
import type { ClientFramings } from "../protocol/session_framings.ts";
import { applyNoDelay, closeQuietly, type Duplex } from "../relay/io.ts";
import { ShadowsocksStream } from "../relay/shadowsocks_stream.ts";
import { type QueuedTimer, startTimer, stopTimer } from "../relay/timer_queue.ts";
import { FIRST_PAYLOAD_WAIT_MS } from "../relay/upstream.ts";
import type { Outbound, OutboundConnection } from "./outbound.ts";

/** A first flight with the request header alone (nothing from the application yet). */
const NO_PAYLOAD = new Uint8Array(0);

/** Where a Shadowsocks server is and the keys to talk to it. */
export interface ShadowsocksServer {
  readonly host: string;
  readonly port: number;
  readonly framings: ClientFramings;
  readonly noDelay: boolean;
}

export class ShadowsocksOutbound implements Outbound {
  readonly name: string;
  readonly server: ShadowsocksServer;
  readonly #onServerSkew: (skew: number) => void;

  /** `name`: how logs call the server (default its address; a plugin's port is not it). */
  constructor(
    server: ShadowsocksServer,
    onServerSkew: (skew: number) => void = () => {},
    name?: string,
  ) {
    this.server = server;
    this.name = name ?? formatAddress(addressFromHost(server.host, server.port));
    this.#onServerSkew = onServerSkew;
  }

  async connect(target: Address, options: { signal: AbortSignal }): Promise<OutboundConnection> {
    const { host, port, noDelay, framings } = this.server;
    const conn = await Deno.connect({ hostname: host, port, signal: options.signal });
    applyNoDelay(conn, noDelay);
    const framing = framings.session(target, { onServerSkew: this.#onServerSkew });
    return {
      stream: new FirstFlightStream(new ShadowsocksStream(conn, framing)),
      bound: conn.localAddr,
    };
  }
}

/**
 * A Shadowsocks client stream whose first flight goes out with the first write, or empty
 * `FIRST_PAYLOAD_WAIT_MS` after the first read when nothing was written by then. Reads wait for
 * the first flight: a response can only be opened once the request is sealed (2022 checks the
 * request salt in it).
 */
export class FirstFlightStream implements Duplex {
  readonly #stream: ShadowsocksStream;
  #started: Promise<void> | undefined;
  /** The first flight is out: reads go straight to the stream, with no frame of their own. */
  #sent = false;
  /** What reads wait on before the first flight is out (made by the first read that waits). */
  #waiting: PromiseWithResolvers<void> | undefined;
  #timer: QueuedTimer | undefined;

  constructor(stream: ShadowsocksStream) {
    this.#stream = stream;
  }

  #start(payload: Uint8Array): Promise<void> {
    this.#stopTimer();
    if (!this.#started) {
      this.#started = this.#stream.start(payload);
      this.#started.then(() => {
        this.#sent = true;
        this.#waiting?.resolve();
        this.#waiting = undefined;
      }, (error) => this.#fail(error));
    }
    return this.#started;
  }

  /** Reads waiting now and later fail with `error` (the first flight failed, or a close). */
  #fail(error: unknown): void {
    const waiting = this.#waiting ??= Promise.withResolvers<void>();
    waiting.reject(error);
    waiting.promise.catch(() => {});
  }

  /** Stops the empty first flight; `#timer` stays set, so it is never armed again. */
  #stopTimer(): void {
    if (this.#timer !== undefined) stopTimer(this.#timer);
  }

  /** Arms the empty first flight, then waits until some first flight is out. */
  #whenSent(): Promise<void> {
    if (!this.#started && this.#timer === undefined) {
      this.#timer = startTimer(() => {
        this.#start(NO_PAYLOAD).catch(() => closeQuietly(this.#stream));
      }, FIRST_PAYLOAD_WAIT_MS);
    }
    return (this.#waiting ??= Promise.withResolvers<void>()).promise;
  }

  /** Not an async function: after the first flight, the stream's own write (no frame of ours). */
  write(p: Uint8Array): Promise<number> {
    if (!this.#started) return this.#start(p).then(() => p.length);
    if (this.#sent) return this.#stream.write(p);
    return this.#started.then(() => this.#stream.write(p));
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#sent) return this.#stream.read(p);
    return this.#whenSent().then(() => this.#stream.read(p));
  }

  readView(): Promise<Uint8Array | null> {
    if (this.#sent) return this.#stream.readView();
    return this.#whenSent().then(() => this.#stream.readView());
  }

  async closeWrite(): Promise<void> {
    await this.#start(NO_PAYLOAD);
    await this.#stream.closeWrite();
  }

  close(): void {
    this.#stopTimer();
    if (!this.#sent) this.#fail(new Deno.errors.BadResource("closed before the first flight"));
    this.#stream.close();
  }
}
