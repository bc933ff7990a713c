/**
 * TCP listening with a deep accept queue. `Deno.listen` asks for a backlog of 511 unless told
 * otherwise; a burst of more connections than that overflows the queue, the kernel drops the
 * extra SYNs, and those clients resend only a second later (bench/throughput.ts, burst test:
 * 1000 connections at once took over a second with 511). The kernel caps the request at
 * `net.core.somaxconn` (4096 on current Linux).
 * @module
 */

/** Connections the kernel may queue for `accept`, per listening address. */
export const LISTEN_BACKLOG = 4096;

/** Listens on `hostname:port` (port 0: a free port). Throws what `Deno.listen` throws. */
export function listenTcp(hostname: string, port: number): Deno.TcpListener {
  return Deno.listen({ hostname, port, tcpBacklog: LISTEN_BACKLOG });
}
