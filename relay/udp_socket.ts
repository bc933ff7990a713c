/**
 * A UDP socket with an idempotent `close` and `using` support, which `Deno.DatagramConn` lacks,
 * and a `receive` that reports closure as `null` instead of an error, so receive loops end
 * cleanly when the socket is closed under them (shutdown, eviction).
 *
 * `close()` does not release the descriptor at once when a receive or send is pending: Deno
 * closes the socket when the last operation holding it ends, which for a pending receive is
 * the next turn of the event loop after the close cancels it. A loop that opens sockets faster
 * than it lets the event loop turn (a flood of new UDP sources) would hold hundreds of closed
 * ones. `released()` tells when the descriptor is really gone.
 * @module
 */
import type { LoopGuard } from "./loop_errors.ts";

/**
 * Receive buffer size that holds any UDP datagram whole (65 535 − 8 bytes of UDP header at
 * most). Deno truncates silently to the buffer it is given (1024 bytes by default).
 */
export const UDP_BUFFER_SIZE = 65_536;

/** Where a datagram goes or came from: an IP literal (no brackets) and a port. */
export interface UdpEndpoint {
  readonly hostname: string;
  readonly port: number;
}

/** One received datagram. */
export interface Datagram {
  /** A view of the buffer given to `receive`. */
  readonly data: Uint8Array;
  readonly from: Deno.NetAddr;
}

export class UdpSocket implements Disposable {
  readonly #conn: Deno.DatagramConn;
  readonly #closing = new AbortController();
  #closed = false;
  /** Receives and sends in flight: each holds the descriptor open. */
  #inFlight = 0;
  #released: PromiseWithResolvers<void> | undefined;

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
  }

  /** Binds a UDP socket; port 0 picks a free one. */
  static bind(hostname: string, port: number): UdpSocket {
    return new UdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port }));
  }

  get addr(): Deno.NetAddr {
    return this.#conn.addr as Deno.NetAddr;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Aborted when the socket is closed: ends a receive loop's pause at once. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /**
   * Waits for one datagram and reads it into `buffer` (give it `UDP_BUFFER_SIZE` bytes).
   * Resolves to null once the socket is closed, before or during the wait.
   */
  async receive(buffer: Uint8Array): Promise<Datagram | null> {
    if (this.#closed) return null;
    this.#inFlight++;
    try {
      const [data, from] = await this.#conn.receive(buffer);
      return { data, from: from as Deno.NetAddr };
    } catch (error) {
      if (this.#closed) return null;
      throw error;
    } finally {
      this.#settled();
    }
  }

  /**
   * The next datagram, or null once the socket is closed. Errors never end the wait: `guard`
   * (made with `closing` as its signal) skips or waits them out, as every receive loop must.
   */
  async receiveNext(buffer: Uint8Array, guard: LoopGuard): Promise<Datagram | null> {
    for (;;) {
      try {
        const datagram = await this.receive(buffer);
        if (datagram) guard.succeeded();
        return datagram;
      } catch (error) {
        if (!(await guard.failed(error))) return null;
      }
    }
  }

  /** Sends `data` as one datagram; throws what the OS reports (e.g. message too long). */
  async send(data: Uint8Array, to: UdpEndpoint): Promise<void> {
    this.#inFlight++;
    try {
      await this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
    } finally {
      this.#settled();
    }
  }

  /** Closes the socket; a pending `receive` resolves to null. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#conn.close();
    if (this.#inFlight === 0) this.#released?.resolve();
  }

  /**
   * Resolves once the socket is closed and no receive or send holds it any more: its
   * descriptor is then released (see the module comment). Pending until `close()`.
   */
  released(): Promise<void> {
    this.#released ??= Promise.withResolvers<void>();
    if (this.#closed && this.#inFlight === 0) this.#released.resolve();
    return this.#released.promise;
  }

  #settled(): void {
    this.#inFlight--;
    if (this.#closed && this.#inFlight === 0) this.#released?.resolve();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** `host:port` for an endpoint, with IPv6 in brackets: the key of an association. */
export function formatEndpoint(endpoint: UdpEndpoint): string {
  return endpoint.hostname.includes(":")
    ? `[${endpoint.hostname}]:${endpoint.port}`
    : `${endpoint.hostname}:${endpoint.port}`;
}

/** `::ffff:a.b.c.d` → `a.b.c.d`: dual-stack sockets report IPv4 peers in the mapped form. */
export function unmapIpv4(hostname: string): string {
  const match = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(hostname);
  return match ? match[1]! : hostname;
}
