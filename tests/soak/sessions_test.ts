/**
 * Soak: many concurrent sessions through one chain, every byte checked.
 *
 * ```
 *   this test: N apps ─SOCKS5─▶ local ══▶ server ─▶ echo process
 *                              (each its own process, so each has its own RSS)
 * ```
 *
 * Each session does the SOCKS5 handshake and one 64-byte echo (ramp-up: until all N have), then
 * echoes a 64-byte message every few seconds for the hold time, then half-closes and waits for
 * the end. Figures: ramp-up, RSS per connection of server and local (RSS with all N live minus
 * RSS after a warm-up, over N), echo latency. Long mode runs the same through libev's
 * ss-local → ss-server afterwards for a ramp-up comparison.
 *
 * Sessions are capped by the hard file limit: server and local each hold two descriptors per
 * session (client side and onward), so one chain carries at most (hard − 64) / 2 sessions.
 * @module
 */
import assert from "node:assert/strict";
import { readExact, writeAll } from "../../relay/io.ts";
import {
  findPeer,
  freePort,
  startSsLocal,
  startSsServer,
  waitForTcpPort,
} from "../interop/_peers.ts";
import {
  byMode,
  fileLimits,
  LONG,
  METHOD,
  metric,
  PASSWORD,
  pause,
  percentile,
  report,
  rssKiB,
  runBounded,
  spawnServing,
  startEchoProcess,
  within,
} from "./_soak.ts";

const REQUESTED_SESSIONS = byMode(300, 10_000);
const HOLD_MS = byMode(3_000, 60_000);
/** Mean pause between a session's echoes (each pause is 0.5–1.5 times this). */
const INTERVAL_MS = byMode(250, 5_000);
const RAMP_CONCURRENCY = 100;
const WARMUP_SESSIONS = 20;
const MESSAGE_BYTES = 64;
/** Descriptors a process keeps besides its sessions' (stdio, listeners, Deno's own). */
const RESERVED_FDS = 64;
/** Any single step (connect, handshake, one echo, the close) that takes longer has failed. */
const STEP_LIMIT_MS = 15_000;

interface Chain {
  name: string;
  localPort: number;
  serverPid: number;
  localPid: number;
  /** Sessions the server counts as live, when it can tell. */
  serverLive?: () => Promise<number>;
  close(): Promise<void>;
}

async function ssdenoChain(): Promise<Chain> {
  const serverPort = freePort();
  const metricsPort = freePort();
  const localPort = freePort();
  const server = spawnServing([
    ...["server", "-s", "127.0.0.1", "-p", `${serverPort}`, "-k", PASSWORD, "-m", METHOD],
    ...["--allow-private-targets", "--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  const local = spawnServing([
    ...["local", "-s", "127.0.0.1", "-p", `${serverPort}`, "-b", "127.0.0.1"],
    ...["-l", `${localPort}`, "-k", PASSWORD, "-m", METHOD],
  ]);
  const close = async () => {
    await local.close();
    await server.close();
  };
  try {
    await waitForTcpPort(serverPort, { exited: server.status });
    await waitForTcpPort(metricsPort, { exited: server.status });
    await waitForTcpPort(localPort, { exited: local.status });
  } catch (error) {
    await close();
    throw new Error(`ssdeno did not start:\n${server.log()}\n${local.log()}`, { cause: error });
  }
  return {
    name: "ssdeno",
    localPort,
    serverPid: server.pid,
    localPid: local.pid,
    serverLive: () => metric(metricsPort, "ssdeno_sessions_live"),
    close,
  };
}

async function libevChain(): Promise<Chain> {
  const server = await startSsServer({ method: METHOD, password: PASSWORD, timeout: 300 });
  try {
    const local = await startSsLocal(server.port, {
      method: METHOD,
      password: PASSWORD,
      timeout: 300,
    });
    return {
      name: "libev",
      localPort: local.port,
      serverPid: server.pid,
      localPid: local.pid,
      close: async () => {
        await local.stop();
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** The message a session sends as its `sequence`th: different per session and per echo. */
function message(session: number, sequence: number): Uint8Array {
  const bytes = new Uint8Array(MESSAGE_BYTES);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (session * 31 + sequence * 7 + i) & 0xff;
  return bytes;
}

class Session {
  readonly #conn: Deno.TcpConn;
  readonly #id: number;
  #sequence = 0;

  private constructor(conn: Deno.TcpConn, id: number) {
    this.#conn = conn;
    this.#id = id;
  }

  /** Connects through the SOCKS5 port and asks for the echo target. */
  static async open(localPort: number, echoPort: number, id: number): Promise<Session> {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: localPort,
      signal: AbortSignal.timeout(STEP_LIMIT_MS),
    });
    try {
      await within(
        conn,
        STEP_LIMIT_MS,
        `session ${id} handshake`,
        (async () => {
          await writeAll(conn, Uint8Array.of(5, 1, 0));
          const choice = await readExact(conn, new Uint8Array(2));
          if (choice?.[1] !== 0) throw new Error(`Session ${id}: method refused`);
          await writeAll(
            conn,
            Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, echoPort >> 8, echoPort & 255),
          );
          const reply = await readExact(conn, new Uint8Array(10));
          if (reply?.[1] !== 0) throw new Error(`Session ${id}: SOCKS5 reply ${reply?.[1]}`);
        })(),
      );
    } catch (error) {
      try {
        conn.close();
      } catch { /* closed by the time limit */ }
      throw error;
    }
    return new Session(conn, id);
  }

  /** Sends the next message and checks the echo byte for byte; returns the round trip in ms. */
  async echo(): Promise<number> {
    const sent = message(this.#id, this.#sequence++);
    const started = performance.now();
    const back = await within(
      this.#conn,
      STEP_LIMIT_MS,
      `session ${this.#id} echo`,
      (async () => {
        await writeAll(this.#conn, sent);
        return await readExact(this.#conn, new Uint8Array(MESSAGE_BYTES));
      })(),
    );
    const ms = performance.now() - started;
    if (back === null) throw new Error(`Session ${this.#id}: closed before echo ${this.#sequence}`);
    assert.deepEqual(back, sent, `session ${this.#id}: echo ${this.#sequence} differs`);
    return ms;
  }

  get echoes(): number {
    return this.#sequence;
  }

  /** Half-closes, expects the end of stream with nothing more, closes. */
  async finish(): Promise<void> {
    try {
      await within(
        this.#conn,
        STEP_LIMIT_MS,
        `session ${this.#id} close`,
        (async () => {
          await this.#conn.closeWrite();
          const extra = await this.#conn.read(new Uint8Array(MESSAGE_BYTES));
          if (extra !== null) throw new Error(`Session ${this.#id}: ${extra} bytes after the end`);
        })(),
      );
    } finally {
      this.abort();
    }
  }

  abort(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

interface RunFigures {
  sessions: number;
  rampMs: number;
  serverKiBPerConn: number;
  localKiBPerConn: number;
  echoes: number;
}

/** Ramp-up, hold and close of `count` sessions through `chain`; throws on any failed session. */
async function soak(chain: Chain, echoPort: number, count: number): Promise<RunFigures> {
  // A warm-up round first, so the baseline RSS has the code paths compiled and pools filled.
  const warm = await runBounded(WARMUP_SESSIONS, WARMUP_SESSIONS, async (i) => {
    const session = await Session.open(chain.localPort, echoPort, -1 - i);
    await session.echo();
    await session.finish();
  });
  assert.ok(warm.every((r) => r.status === "fulfilled"), `${chain.name}: warm-up failed`);
  const baseServer = await rssKiB(chain.serverPid);
  const baseLocal = await rssKiB(chain.localPid);

  const rampStarted = performance.now();
  const opened = await runBounded(count, RAMP_CONCURRENCY, async (id) => {
    const session = await Session.open(chain.localPort, echoPort, id);
    try {
      await session.echo();
    } catch (error) {
      session.abort();
      throw error;
    }
    return session;
  });
  const rampMs = performance.now() - rampStarted;
  const sessions = opened.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const failures = opened.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
  try {
    assert.equal(
      failures.length,
      0,
      `${chain.name}: ${failures.length} of ${count} sessions failed to open: ${
        failures.slice(0, 3).join("; ")
      }`,
    );
    const peakServer = await rssKiB(chain.serverPid);
    const peakLocal = await rssKiB(chain.localPid);
    if (chain.serverLive) {
      assert.equal(await chain.serverLive(), count, "live sessions on the server");
    }

    const latencies: number[] = [];
    const holdEnd = performance.now() + HOLD_MS;
    const held = await Promise.allSettled(sessions.map(async (session) => {
      while (performance.now() < holdEnd) {
        await pause(INTERVAL_MS * (0.5 + Math.random()));
        latencies.push(await session.echo());
      }
    }));
    const heldFailures = held.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    assert.equal(
      heldFailures.length,
      0,
      `${chain.name}: ${heldFailures.length} sessions failed while held: ${
        heldFailures.slice(0, 3).join("; ")
      }`,
    );
    const endServer = await rssKiB(chain.serverPid);
    const endLocal = await rssKiB(chain.localPid);

    const closed = await Promise.allSettled(sessions.map((session) => session.finish()));
    const closeFailures = closed.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    assert.equal(
      closeFailures.length,
      0,
      `${chain.name}: ${closeFailures.length} sessions ended badly: ${
        closeFailures.slice(0, 3).join("; ")
      }`,
    );
    const echoes = sessions.reduce((total, session) => total + session.echoes, 0);
    // Every session echoed through the whole hold (at least one echo after the first).
    assert.ok(sessions.every((s) => s.echoes >= 2), `${chain.name}: a session stopped echoing`);

    const figures = {
      sessions: count,
      rampMs,
      serverKiBPerConn: (peakServer - baseServer) / count,
      localKiBPerConn: (peakLocal - baseLocal) / count,
      echoes,
    };
    report(`sessions ${chain.name}`, {
      sessions: count,
      hold_s: HOLD_MS / 1000,
      ramp_ms: rampMs,
      ramp_per_s: count / (rampMs / 1000),
      server_rss_base_mib: baseServer / 1024,
      server_rss_peak_mib: peakServer / 1024,
      server_rss_end_mib: endServer / 1024,
      server_kib_per_conn: figures.serverKiBPerConn,
      server_kib_per_conn_end: (endServer - baseServer) / count,
      local_rss_base_mib: baseLocal / 1024,
      local_rss_peak_mib: peakLocal / 1024,
      local_rss_end_mib: endLocal / 1024,
      local_kib_per_conn: figures.localKiBPerConn,
      local_kib_per_conn_end: (endLocal - baseLocal) / count,
      echoes,
      echo_p50_ms: percentile(latencies, 50),
      echo_p99_ms: percentile(latencies, 99),
      echo_max_ms: Math.max(...latencies),
    });
    return figures;
  } finally {
    sessions.forEach((session) => session.abort());
  }
}

Deno.test({
  name:
    `soak: ${REQUESTED_SESSIONS} concurrent sessions (or what the file limit allows) echo correctly through local → server`,
  async fn() {
    const limits = await fileLimits();
    const chainCap = Math.floor((limits.hard - RESERVED_FDS) / 2);
    const ownCap = limits.soft - RESERVED_FDS;
    const count = Math.min(REQUESTED_SESSIONS, chainCap, ownCap);
    if (count < REQUESTED_SESSIONS) {
      report("sessions cap", {
        requested: REQUESTED_SESSIONS,
        sessions: count,
        hard_file_limit: limits.hard,
        soft_file_limit: limits.soft,
        reason: count === chainCap
          ? "server_and_local_hold_2_fds_per_session"
          : "this_process_soft_limit(run_long.ts_raises_it)",
      });
    }
    await using echo = await startEchoProcess();
    const ssdeno = await ssdenoChain();
    let ours: RunFigures;
    try {
      ours = await soak(ssdeno, echo.port, count);
    } finally {
      await ssdeno.close();
    }
    // The libev comparison is long mode only, and needs shadowsocks-libev installed.
    if (!LONG) return;
    if (findPeer("ss-server") === undefined || findPeer("ss-local") === undefined) {
      console.log("soak sessions libev: skipped: install shadowsocks-libev for the comparison");
      return;
    }
    const libev = await libevChain();
    let theirs: RunFigures;
    try {
      theirs = await soak(libev, echo.port, count);
    } finally {
      await libev.close();
    }
    report("sessions compare", {
      sessions: count,
      ssdeno_ramp_ms: ours.rampMs,
      libev_ramp_ms: theirs.rampMs,
      ramp_ratio: ours.rampMs / theirs.rampMs,
      ssdeno_server_kib_per_conn: ours.serverKiBPerConn,
      libev_server_kib_per_conn: theirs.serverKiBPerConn,
      ssdeno_local_kib_per_conn: ours.localKiBPerConn,
      libev_local_kib_per_conn: theirs.localKiBPerConn,
    });
  },
});
