/**
 * The TCP echo server that bench/throughput.ts uses as the target of its memory, setup and burst
 * tests: imported and run in the benchmark's own process when the targets are on loopback, or
 * run as a child inside the test host's network namespace (tests/_target_host.ts) when a peer
 * that refuses loopback targets (outline-ss-server) is in the run.
 *
 * Run: `deno run --allow-net bench/echo_target.ts HOST [COUNT]`: listens on COUNT (default 1)
 * free ports of HOST, prints one JSON line `{"ports": [PORT, …]}` and echoes until SIGTERM.
 * Several ports, because off loopback the kernel does not reuse TIME_WAIT ports for new
 * connections (`tcp_tw_reuse` = 2, its default, means loopback only): tens of thousands of short
 * connections to one address and port within a minute use up its ephemeral ports, and connect()
 * then slows down by milliseconds. The benchmark spreads its chains over the ports.
 * @module
 */

import { listenTcp } from "../relay/listen.ts";

/** A running echo server. */
export interface Echo {
  port: number;
  close(): Promise<void>;
}

/** The echo listens like ssdeno (a deep accept queue, relay/listen.ts): bursts never overflow it. */
export function startEcho(hostname: string): Echo {
  const listener = listenTcp(hostname, 0);
  const conns = new Set<Deno.Conn>();
  const sessions = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let written = 0;
        while (written < n) written += await conn.write(buffer.subarray(written, n));
      }
    } catch (error) {
      // A peer reset or our own close at shutdown ends the echo; anything else is a bug.
      if (
        !(error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe)
      ) throw error;
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const session = serve(conn);
      sessions.add(session);
      session.finally(() => sessions.delete(session));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) closeQuietly(conn);
      await accepting;
      await Promise.allSettled([...sessions]);
    },
  };
}

/** Closes `conn` unless it is closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

if (import.meta.main) {
  const [hostname, count = "1"] = Deno.args;
  if (!hostname || !/^[1-9]\d{0,2}$/.test(count)) {
    console.error("usage: echo_target.ts HOST [COUNT]");
    Deno.exit(2);
  }
  const echoes = Array.from({ length: Number(count) }, () => startEcho(hostname));
  Deno.addSignalListener("SIGTERM", () => {
    Promise.allSettled(echoes.map((echo) => echo.close())).finally(() => Deno.exit(0));
  });
  console.log(JSON.stringify({ ports: echoes.map((echo) => echo.port) }));
}
