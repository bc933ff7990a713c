/**
 * `ssdeno server --workers 2` as an operator runs it (issue 15): two isolates accept on each TCP
 * port. Connections land on both (the per-isolate counter in /metrics says where), a first
 * flight replayed until it lands on the other isolate is refused there, per-user bytes and
 * statuses add up in /metrics, a SIGHUP reload and an API user change reach both, a listener a
 * reload replaces is retired in both, and SIGTERM ends both within the grace period.
 */
import assert from "node:assert/strict";
import type { LocalConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { writeAll } from "../../relay/io.ts";
import type { RunningService } from "../../relay/service.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";
import { randomPsk } from "./_udp_harness.ts";
import {
  localConfig,
  localhostTarget,
  metricSample,
  readAll,
  recordingForwarder,
  socksConnect,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const METHOD_2022 = "2022-blake3-aes-128-gcm";
const GRACE_S = 2;

async function scrape(port: number): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** Connections each isolate accepted so far. */
function perIsolate(metrics: string): [number, number] {
  return [
    metricSample(metrics, "ssdeno_worker_connections_total", '{worker="0"}'),
    metricSample(metrics, "ssdeno_worker_connections_total", '{worker="1"}'),
  ];
}

/**
 * Resolves once a new TCP connection to `port` is refused, within `ms`: the worker closes its
 * socket when the main isolate's message arrives, a moment after the main one.
 */
async function refusedWithin(port: number, ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) return;
      throw error;
    }
    if (performance.now() > until) throw new Error(`port ${port} still accepts after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Opens a session through `local` to the echo target and checks one byte comes back. */
async function openSession(local: RunningService, echoPort: number) {
  const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echoPort));
  assert.equal(reply, 0);
  const ping = async (byte: number) => {
    await writeAll(conn, Uint8Array.of(byte));
    const got = new Uint8Array(1);
    if ((await conn.read(got)) !== 1 || got[0] !== byte) throw new Error("no echo");
  };
  await ping(0);
  return { conn, ping };
}

/** Sends `size` bytes through a new session and reads their echo; false when refused. */
async function echoSession(local: RunningService, echoPort: number, size: number) {
  try {
    const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echoPort));
    if (reply !== 0) {
      conn.close();
      return false;
    }
    await writeAll(conn, new Uint8Array(size).fill(7));
    await conn.closeWrite();
    const back = await readAll(conn);
    conn.close();
    return back.length === size;
  } catch {
    return false; // refused or cut: the answer is "no"
  }
}

Deno.test("--workers 2: both isolates serve, count into one total, reload, and shut down", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-workers-" });
  const file = `${dir}/server.json`;
  const port = freePort();
  const metricsPort = freePort();
  const apiPort = freePort();
  const ipsk = randomPsk(16);
  const keys = { alice: randomPsk(16), bob: randomPsk(16), carol: randomPsk(16) };
  const write = (...names: (keyof typeof keys)[]) =>
    Deno.writeTextFile(
      file,
      JSON.stringify({
        server: "127.0.0.1",
        server_port: port,
        method: METHOD_2022,
        password: ipsk,
        users: names.map((name) => ({ name, password: keys[name] })),
        allow_private_targets: true,
        handshake_timeout: 1,
        grace_period: GRACE_S,
        metrics: `127.0.0.1:${metricsPort}`,
        api: `127.0.0.1:${apiPort}`,
      }),
    );
  await write("alice", "bob");
  const echo = startEchoServer();
  const child = spawnSsdeno(["server", "-c", file, "--workers", "2", "-v"]);
  const log = child.log;
  const locals: RunningService[] = [];
  const asUser = async (password: string) => {
    const overrides: Partial<LocalConfig> = { password: `${ipsk}:${password}` };
    const local = await startLocal({ ...localConfig(METHOD_2022, port), ...overrides }, {
      graceMs: 0,
    });
    locals.push(local);
    return local;
  };
  try {
    await waitForTcpPort(port, { exited: child.status });
    await waitFor(() => log().includes("worker 1: server listening"), 10_000, "the worker");
    await waitForTcpPort(metricsPort, { exited: child.status });
    const alice = await asUser(keys.alice);
    const first = await scrape(metricsPort);
    assert.equal(metricSample(first, "ssdeno_isolates"), 2, "--workers 2 runs two from the start");
    assert.ok(metricSample(first, "process_resident_memory_bytes") > 0, first);
    const before = perIsolate(first);

    // Forty sessions of 1000 bytes each way: the kernel spreads them over both isolates, and
    // every byte shows up in alice's series, whichever isolate relayed it.
    const sessions = 40;
    const results = await Promise.all(
      Array.from({ length: sessions }, () => echoSession(alice, echo.port, 1000)),
    );
    assert.deepEqual(results.filter((ok) => !ok), []);
    let metrics = "";
    for (let tries = 0; tries < 100; tries++) {
      metrics = await scrape(metricsPort);
      if (
        metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="OK"}') >= sessions
      ) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const after = perIsolate(metrics);
    const served = [after[0] - before[0], after[1] - before[1]];
    assert.equal(served[0]! + served[1]!, sessions, metrics);
    assert.ok(served[0]! > 0 && served[1]! > 0, `sessions per isolate: ${served}`);
    assert.equal(
      metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="OK"}'),
      sessions,
    );
    const aliceBytes = (dir: string) =>
      metricSample(
        metrics,
        "shadowsocks_data_bytes",
        `{proto="tcp",dir="${dir}",access_key="alice"}`,
      );
    assert.equal(aliceBytes("p>t"), sessions * 1000, metrics);
    assert.equal(aliceBytes("p<t"), sessions * 1000, metrics);
    // The debug lines say which isolate served each session: both did.
    const okLines = log().split("\n").filter((line) => / user "alice" → .* OK /.test(line));
    assert.ok(okLines.some((line) => line.includes("DEBUG worker 1: server ")), okLines.join("\n"));
    assert.ok(okLines.some((line) => line.includes("DEBUG server ")), okLines.join("\n"));
    // The management API reads the same totals.
    const stats = await (await fetch(`http://127.0.0.1:${apiPort}/stats`)).json();
    const aliceStats = stats.users.find((u: { username: string }) => u.username === "alice");
    assert.equal(aliceStats.uplinkBytes, sessions * 1000);
    assert.equal(aliceStats.tcpSessions, sessions);

    // SIGHUP: carol added, bob removed. Twenty sessions each: every isolate applied it, or
    // about half of carol's would be refused and half of bob's would pass.
    const bob = await asUser(keys.bob);
    const aliceLive = await openSession(alice, echo.port);
    await write("alice", "carol");
    child.kill("SIGHUP");
    await waitFor(() => log().includes("users added: carol; users removed: bob"), 5000, "reload");
    const carol = await asUser(keys.carol);
    const tries = Array.from({ length: 20 });
    assert.deepEqual(
      await Promise.all(tries.map(() => echoSession(carol, echo.port, 10))),
      tries.map(() => true),
      "carol everywhere",
    );
    assert.deepEqual(
      await Promise.all(tries.map(() => echoSession(bob, echo.port, 10))),
      tries.map(() => false),
      "bob nowhere",
    );
    await aliceLive.ping(1);

    // A user added over the API reaches both isolates too.
    const dave = randomPsk(16);
    const added = await fetch(`http://127.0.0.1:${apiPort}/users`, {
      method: "POST",
      body: JSON.stringify({ username: "dave", uPSK: dave }),
    });
    assert.equal(added.status, 201, await added.text());
    const daveLocal = await asUser(dave);
    assert.deepEqual(
      await Promise.all(tries.map(() => echoSession(daveLocal, echo.port, 10))),
      tries.map(() => true),
      "dave everywhere",
    );

    // SIGTERM with sessions live on both isolates: no new sessions, the live ones relay during
    // the grace period, then every isolate cuts its own and the process exits 0.
    const live = [aliceLive];
    const landedOn = new Set<number>();
    while (live.length < 6 || landedOn.size < 2) {
      assert.ok(live.length < 40, "40 sessions all on one isolate");
      const counts = perIsolate(await scrape(metricsPort));
      live.push(await openSession(alice, echo.port));
      const next = perIsolate(await scrape(metricsPort));
      landedOn.add(next[0] > counts[0] ? 0 : 1);
    }
    metrics = await scrape(metricsPort);
    assert.equal(metricSample(metrics, "ssdeno_sessions_live"), live.length, metrics);
    const signalled = performance.now();
    child.kill("SIGTERM");
    await waitFor(
      () => log().includes(`Shutting down: no new sessions; ${live.length} live sessions`),
      5000,
      "the shutdown line with both isolates' sessions",
    );
    await refusedWithin(port, 1000);
    await Promise.all(live.map((session, i) => session.ping(i + 2)));
    for (const session of live) assert.equal((await readAll(session.conn)).length, 0);
    const cutAfter = (performance.now() - signalled) / 1000;
    live.forEach((session) => session.conn.close());
    const status = await child.status;
    assert.equal(status.code, 0, log());
    assert.ok(cutAfter >= GRACE_S - 0.2 && cutAfter < GRACE_S + 3, `cut after ${cutAfter} s`);
    await child.close();
    const cut = log().split("\n").filter((line) => line.includes("ERR_SHUTDOWN"));
    assert.ok(cut.some((line) => line.includes("worker 1: server ")), cut.join("\n"));
    assert.ok(cut.some((line) => / DEBUG server /.test(line)), cut.join("\n"));
  } finally {
    await child.close();
    for (const local of locals) await local.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--workers 2: a reload that replaces a listener retires it in both isolates", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-workers-" });
  const file = `${dir}/server.json`;
  const port = freePort();
  const metricsPort = freePort();
  const write = (method: string) =>
    Deno.writeTextFile(
      file,
      JSON.stringify({
        server: "127.0.0.1",
        server_port: port,
        method,
        password: "e2e-password",
        allow_private_targets: true,
        grace_period: GRACE_S,
        metrics: `127.0.0.1:${metricsPort}`,
      }),
    );
  await write("aes-128-gcm");
  const echo = startEchoServer();
  const child = spawnSsdeno(["server", "-c", file, "--workers", "2", "-v"]);
  const log = child.log;
  const before = await startLocal(localConfig("aes-128-gcm", port), { graceMs: 0 });
  const after = await startLocal(localConfig("chacha20-ietf-poly1305", port), { graceMs: 0 });
  try {
    await waitForTcpPort(port, { exited: child.status });
    await waitFor(() => log().includes("worker 1: server listening"), 10_000, "the worker");
    await waitForTcpPort(metricsPort, { exited: child.status });
    // Sessions on both isolates, then the method changes: the listener is replaced.
    const live = [];
    const landedOn = new Set<number>();
    while (live.length < 4 || landedOn.size < 2) {
      assert.ok(live.length < 40, "40 sessions all on one isolate");
      const counts = perIsolate(await scrape(metricsPort));
      live.push(await openSession(before, echo.port));
      landedOn.add(perIsolate(await scrape(metricsPort))[0] > counts[0] ? 0 : 1);
    }
    await write("chacha20-ietf-poly1305");
    child.kill("SIGHUP");
    await waitFor(() => log().includes(`127.0.0.1:${port} replaced`), 5000, "the replacement");
    // New sessions take the new method wherever they land; the old ones go on.
    const tries = Array.from({ length: 20 });
    assert.deepEqual(
      await Promise.all(tries.map(() => echoSession(after, echo.port, 10))),
      tries.map(() => true),
    );
    await Promise.all(live.map((session, i) => session.ping(i + 1)));
    // SIGTERM: the retired listener's sessions, in both isolates, end with the grace period.
    const signalled = performance.now();
    child.kill("SIGTERM");
    await Promise.all(live.map((session, i) => session.ping(i + 100)));
    for (const session of live) {
      // Bounded: a retired listener no isolate cuts would hold the session until it ends.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cut = await Promise.race([
        readAll(session.conn).then((rest) => rest.length === 0),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 7000)),
      ]);
      clearTimeout(timer);
      if (!cut) session.conn.close();
      assert.ok(cut, `a session of the retired listener was not cut\n${log()}`);
    }
    const cutAfter = (performance.now() - signalled) / 1000;
    live.forEach((session) => session.conn.close());
    assert.equal((await child.status).code, 0, log());
    assert.ok(cutAfter >= GRACE_S - 0.2 && cutAfter < GRACE_S + 3, `cut after ${cutAfter} s`);
    await child.close();
    const cut = log().split("\n").filter((line) => line.includes("ERR_SHUTDOWN"));
    assert.ok(cut.some((line) => line.includes("worker 1: server ")), cut.join("\n"));
    assert.ok(cut.some((line) => / DEBUG server /.test(line)), cut.join("\n"));
  } finally {
    await child.close();
    await before.close();
    await after.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--workers 2: a first flight replayed to the other isolate is refused", async (t) => {
  const echo = startEchoServer();
  try {
    for (const method of ["aes-128-gcm", METHOD_2022]) {
      await t.step(method, async () => {
        const password = method === METHOD_2022 ? randomPsk(16) : "e2e-password";
        const port = freePort();
        const metricsPort = freePort();
        const child = spawnSsdeno([
          ...["server", "-s", "127.0.0.1", "-p", `${port}`, "-k", password, "-m", method],
          ...["--allow-private-targets", "--workers", "2", "--handshake-timeout", "1"],
          ...["--metrics", `127.0.0.1:${metricsPort}`],
        ]);
        const forwarder = recordingForwarder(port);
        const local = await startLocal(
          localConfig(method, forwarder.port, { password }),
          { graceMs: 0 },
        );
        try {
          await waitForTcpPort(port, { exited: child.status });
          await waitFor(() => child.log().includes("worker 1: server listening"), 10_000, "worker");
          await waitForTcpPort(metricsPort, { exited: child.status });
          // The original session, through the recording forwarder.
          let counts = perIsolate(await scrape(metricsPort));
          const session = await openSession(local, echo.port);
          session.conn.close();
          let metrics = "";
          for (let i = 0; i < 100; i++) {
            metrics = await scrape(metricsPort);
            if (
              metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="OK"}') === 1
            ) break;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.equal(
            metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="OK"}'),
            1,
          );
          let next = perIsolate(metrics);
          const original = next[0] > counts[0] ? 0 : 1;
          counts = next;
          const flight = forwarder.flights()[0]!;
          assert.ok(flight.length > 32, `${flight.length} bytes recorded`);

          // Replays, straight to the server, until one lands on the other isolate. Each must be
          // refused wherever it lands.
          const landed: number[] = [];
          while (!landed.includes(1 - original)) {
            assert.ok(landed.length < 60, `60 replays all landed on isolate ${original}`);
            const conn = await Deno.connect({ hostname: "127.0.0.1", port });
            await writeAll(conn, flight);
            conn.close();
            // Ended, wherever it ran: one more connection counted, none live, and as many ended
            // (the families are read one after the other while the workers count on: a scrape
            // taken as a session ends can show it ended in one family and not yet in another).
            for (let i = 0; i < 200; i++) {
              metrics = await scrape(metricsPort);
              next = perIsolate(metrics);
              const total = next[0] + next[1];
              const ended = metrics.split("\n")
                .filter((line) => line.startsWith("shadowsocks_tcp_connections_closed{"))
                .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
              const settled = total === counts[0] + counts[1] + 1 && ended === total &&
                metricSample(metrics, "ssdeno_sessions_live") === 0;
              if (settled) break;
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            landed.push(next[0] > counts[0] ? 0 : 1);
            counts = next;
            const statuses = metrics.split("\n")
              .filter((line) => line.startsWith("shadowsocks_tcp_connections_closed"));
            assert.equal(
              metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="ERR_REPLAY"}'),
              landed.length,
              `replay ${landed.length} landed on isolate ${landed.at(-1)} (the original on ` +
                `${original}) and was not refused:\n${statuses.join("\n")}`,
            );
          }
          assert.equal(
            metricSample(metrics, "shadowsocks_tcp_connections_closed", '{status="OK"}'),
            1,
          );
        } finally {
          await local.close();
          await forwarder.close();
          await child.close();
        }
      });
    }
  } finally {
    await echo.close();
  }
});
