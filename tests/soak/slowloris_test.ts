/**
 * Soak: slowloris against the server, with a real client served meanwhile.
 *
 * ```
 *   N slow connections ─ 1 junk byte/s ─────────▶ server (subprocess, --handshake-timeout H)
 *   real client ─SOCKS5─▶ local (in-process) ══▶ server ─▶ echo (in-process)
 * ```
 *
 * A slow connection never gets as far as a whole salt, so the server can only wait; each must
 * be closed by the handshake deadline: not before H (measured from our connect, which comes
 * before the server's accept), and not much after. The real client pings every 100 ms on one
 * session and opens a fresh session every 500 ms; every echo must come back right.
 * @module
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { localConfig, localhostTarget, socksConnect, startEchoServer } from "../e2e/_harness.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import {
  byMode,
  METHOD,
  metric,
  PASSWORD,
  pause,
  percentile,
  report,
  runBounded,
  spawnServing,
  waitUntil,
  within,
} from "./_soak.ts";

const SLOW_CONNECTIONS = byMode(200, 2_000);
const HANDSHAKE_S = byMode(2, 10);
const BYTE_INTERVAL_MS = 1_000;
const OPEN_CONCURRENCY = 100;
/** How late our event loop may note a connect that the server had already accepted. */
const EARLY_SLOP_MS = byMode(50, 250);
/** A generous bound on how late a close may come on a loaded machine. */
const LATE_MARGIN_MS = byMode(1_500, 5_000);
const PING_INTERVAL_MS = 100;
const FRESH_INTERVAL_MS = 500;
const PING_BYTES = 32;
/** One echo (or a fresh session) slower than this has failed; the bound on latency. */
const STEP_LIMIT_MS = 3_000;

interface SlowResult {
  /** When the server's close reached us, ms after our connect completed. */
  closedAfterMs: number;
  bytesSent: number;
}

/**
 * One slowloris connection, already open: a junk byte a second until the server closes it.
 * `opened` is when our connect completed.
 */
async function holdSlow(conn: Deno.TcpConn, opened: number, limitMs: number): Promise<SlowResult> {
  using _ = conn;
  let closedAt: number | undefined;
  const reading = (async () => {
    try {
      const n = await conn.read(new Uint8Array(64));
      if (n !== null) throw new Error(`The server answered a slow connection with ${n} bytes`);
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    }
    closedAt ??= performance.now();
  })();
  reading.catch(() => {}); // awaited below
  let bytesSent = 0;
  await within(
    conn,
    limitMs,
    "a slow connection the server never closed",
    (async () => {
      while (closedAt === undefined) {
        await Promise.race([reading, pause(BYTE_INTERVAL_MS)]);
        if (closedAt !== undefined) break;
        try {
          await writeAll(conn, crypto.getRandomValues(new Uint8Array(1)));
          bytesSent++;
        } catch (error) {
          const gone = error instanceof Deno.errors.ConnectionReset ||
            error instanceof Deno.errors.BrokenPipe;
          if (!gone) throw error;
          closedAt ??= performance.now();
        }
      }
      await reading;
    })(),
  );
  return { closedAfterMs: closedAt! - opened, bytesSent };
}

/** Pings on one session until `done()`; returns the round trips in ms. */
async function pinger(localPort: number, echoPort: number, done: () => boolean) {
  const latencies: number[] = [];
  const { conn } = await socksConnect(localPort, localhostTarget(echoPort));
  try {
    for (let sequence = 0; !done(); sequence++) {
      const sent = new Uint8Array(PING_BYTES).fill(sequence & 0xff);
      const started = performance.now();
      const back = await within(
        conn,
        STEP_LIMIT_MS,
        "a ping",
        (async () => {
          await writeAll(conn, sent);
          return await readExact(conn, new Uint8Array(PING_BYTES));
        })(),
      );
      latencies.push(performance.now() - started);
      assert.deepEqual(back, sent, `ping ${sequence} came back wrong`);
      await pause(PING_INTERVAL_MS);
    }
  } finally {
    conn.close();
  }
  return latencies;
}

/** Opens a fresh session every 500 ms until `done()`, one echo each; returns their times. */
async function freshSessions(localPort: number, echoPort: number, done: () => boolean) {
  const times: number[] = [];
  while (!done()) {
    const started = performance.now();
    const { conn } = await socksConnect(localPort, localhostTarget(echoPort));
    try {
      const hello = new TextEncoder().encode(`fresh ${times.length}`);
      const back = await within(
        conn,
        STEP_LIMIT_MS,
        "a fresh session",
        (async () => {
          await writeAll(conn, hello);
          return await readExact(conn, new Uint8Array(hello.length));
        })(),
      );
      assert.deepEqual(back, hello, `fresh session ${times.length} came back wrong`);
    } finally {
      conn.close();
    }
    times.push(performance.now() - started);
    await pause(FRESH_INTERVAL_MS);
  }
  return times;
}

Deno.test(`soak: ${SLOW_CONNECTIONS} slowloris connections are all closed at the handshake deadline while a real client is served`, async () => {
  const serverPort = freePort();
  const metricsPort = freePort();
  await using server = spawnServing([
    ...["server", "-s", "127.0.0.1", "-p", `${serverPort}`, "-k", PASSWORD, "-m", METHOD],
    ...["--allow-private-targets", "--handshake-timeout", `${HANDSHAKE_S}`],
    ...["--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  await waitForTcpPort(serverPort, { exited: server.status });
  await waitForTcpPort(metricsPort, { exited: server.status });
  const echo = startEchoServer();
  const local = await startLocal(localConfig(METHOD, serverPort, { password: PASSWORD }), {
    graceMs: 0,
  });
  try {
    const deadlineMs = HANDSHAKE_S * 1000;
    let slowDone = false;
    const real = Promise.all([
      pinger(local.addr.port, echo.port, () => slowDone),
      freshSessions(local.addr.port, echo.port, () => slowDone),
    ]);
    real.catch(() => {}); // awaited below
    // Connects are paced (100 at a time); each connection is held from its own connect on.
    const started = performance.now();
    const holds: Promise<SlowResult>[] = [];
    const connects = await runBounded(SLOW_CONNECTIONS, OPEN_CONCURRENCY, async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
      const hold = holdSlow(conn, performance.now(), deadlineMs + LATE_MARGIN_MS + 5_000);
      hold.catch(() => {}); // settled below
      holds.push(hold);
    });
    const openAllMs = performance.now() - started;
    const slow = await Promise.allSettled(holds);
    slowDone = true;
    const [pings, fresh] = await real;

    const refused = connects.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    assert.equal(refused.length, 0, `${refused.length} slow connects failed: ${refused[0]}`);
    const failures = slow.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    assert.equal(
      failures.length,
      0,
      `${failures.length} slow connections failed: ${failures.slice(0, 3).join("; ")}`,
    );
    const results = slow.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    const closures = results.map((r) => r.closedAfterMs);
    const timeouts = 'shadowsocks_tcp_connections_closed{status="ERR_TIMEOUT"}';
    await waitUntil(
      async () => (await metric(metricsPort, timeouts)) === SLOW_CONNECTIONS,
      5_000,
      `the server counting ${SLOW_CONNECTIONS} ERR_TIMEOUT`,
    );
    report("slowloris", {
      slow_connections: SLOW_CONNECTIONS,
      handshake_timeout_s: HANDSHAKE_S,
      open_all_ms: openAllMs,
      closed_min_ms: Math.min(...closures),
      closed_p50_ms: percentile(closures, 50),
      closed_p99_ms: percentile(closures, 99),
      closed_max_ms: Math.max(...closures),
      bytes_per_slow_max: Math.max(...results.map((r) => r.bytesSent)),
      pings: pings.length,
      ping_p50_ms: percentile(pings, 50),
      ping_p99_ms: percentile(pings, 99),
      ping_max_ms: Math.max(...pings),
      fresh_sessions: fresh.length,
      fresh_p50_ms: percentile(fresh, 50),
      fresh_max_ms: Math.max(...fresh),
    });
    const early = closures.filter((ms) => ms < deadlineMs - EARLY_SLOP_MS);
    assert.equal(
      early.length,
      0,
      `closed before the ${deadlineMs} ms deadline: ${early.slice(0, 5)}`,
    );
    const late = closures.filter((ms) => ms > deadlineMs + LATE_MARGIN_MS);
    assert.equal(
      late.length,
      0,
      `closed over ${LATE_MARGIN_MS} ms after the deadline: ${late.slice(0, 5)}`,
    );
    assert.ok(pings.length > 0 && fresh.length > 0, "the real client was served meanwhile");
  } finally {
    await local.close();
    await echo.close();
  }
});
