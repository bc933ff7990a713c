/**
 * TCP listening with a deep accept queue. `Deno.listen` asks for a backlog of 511 unless told
 * otherwise; a burst of more connections than that overflows the queue, the kernel drops the
 * extra SYNs, and those clients resend only a second later (bench/throughput.ts, burst test:
 * 1000 connections at once took over a second with 511). The kernel caps the request at
 * `net.core.somaxconn` (4096 on current Linux).
 * @module
 */

import { UdpSocket } from "./udp_socket.ts";

/** Connections the kernel may queue for `accept`, per listening address. */
export const LISTEN_BACKLOG = 4096;

/**
 * Listens on `hostname:port` (port 0: a free port). Throws what `Deno.listen` throws.
 * `reusePort` sets SO_REUSEPORT, so several processes share the port (Linux spreads new
 * connections over them).
 */
export function listenTcp(hostname: string, port: number, reusePort = false): Deno.TcpListener {
  return Deno.listen({
    hostname,
    port,
    tcpBacklog: LISTEN_BACKLOG,
    ...(reusePort ? { reusePort } : {}),
  });
}

/** Attempts at a port free for both TCP and UDP when the caller asked for any (port 0). */
const PAIR_ATTEMPTS = 10;

/**
 * Binds the TCP listener and/or UDP socket of one service on the same port number. With port 0
 * TCP picks any free port, whose number may already be taken for UDP: then both are tried again
 * on another (up to 10 times) instead of failing at random.
 */
export function bindTcpAndUdp(
  hostname: string,
  port: number,
  want: { tcp: boolean; udp: boolean; reusePort?: boolean },
): { listener?: Deno.TcpListener; socket?: UdpSocket } {
  for (let attempt = 1;; attempt++) {
    // SO_REUSEPORT is TCP only: Deno's UDP sockets do not take it.
    const listener = want.tcp ? listenTcp(hostname, port, want.reusePort) : undefined;
    if (!want.udp) return listener ? { listener } : {};
    try {
      const socket = UdpSocket.bind(hostname, listener?.addr.port ?? port);
      return listener ? { listener, socket } : { socket };
    } catch (error) {
      listener?.close();
      const retry = port === 0 && listener !== undefined && attempt < PAIR_ATTEMPTS &&
        error instanceof Deno.errors.AddrInUse;
      if (!retry) throw error;
    }
  }
}
