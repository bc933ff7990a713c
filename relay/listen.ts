/**
 * TCP listening with a deep accept queue. Deno's `Deno.listen` has no backlog option and asks
 * for 511; a burst of more connections than that overflows the queue, and the kernel drops the
 * extra SYNs, which the clients resend only after a second (bench/throughput.ts, burst test).
 * So a service listens on several sockets sharing the port (`SO_REUSEPORT`): the kernel spreads
 * new connections across them by address hash, and each brings its own queue.
 *
 * `SO_REUSEPORT` would also let a second process of the same user join the port silently, so
 * the port is first bound once without it: when anything already listens there, that bind fails
 * with `AddrInUse` as a plain listen would. (A process started later fails the same way, since
 * it does the same check against our sockets.)
 * @module
 */

/** Sockets per listening address: 4 × 511 queued connections. */
export const ACCEPT_QUEUES = 4;

/**
 * Listens on `hostname:port` (port 0: a free port) with `queues` sockets sharing the port.
 * Throws what `Deno.listen` throws (`AddrInUse`, `PermissionDenied`, …).
 */
export function listenTcp(
  hostname: string,
  port: number,
  queues: number = ACCEPT_QUEUES,
): Deno.TcpListener[] {
  const probe = Deno.listen({ hostname, port });
  if (queues <= 1) return [probe];
  const chosen = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const listeners: Deno.TcpListener[] = [];
  try {
    for (let i = 0; i < queues; i++) {
      listeners.push(Deno.listen({ hostname, port: chosen, reusePort: true }));
    }
  } catch (error) {
    for (const listener of listeners) listener.close();
    throw error;
  }
  return listeners;
}
