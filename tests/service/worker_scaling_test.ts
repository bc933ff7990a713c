/**
 * A server without a `workers` count (service/workers.ts, service/worker_scaling.ts): when the
 * process counts as busy, and what a worker added under load must do: start every running
 * listener as it was last updated, and share the replay memory the main isolate has been filling.
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { createLogger } from "../../relay/log.ts";
import { writeAll } from "../../relay/io.ts";
import { settledWithin } from "../../relay/timer_queue.ts";
import { startListener } from "../../server.ts";
import { ScaleUpPolicy } from "../../service/worker_scaling.ts";
import { startWorkers } from "../../service/workers.ts";
import { freePort } from "../interop/_peers.ts";
import {
  localConfig,
  localhostTarget,
  recordingForwarder,
  serverConfig,
  socksConnect,
  startEchoServer,
  waitFor,
} from "../e2e/_harness.ts";

Deno.test("scaling: three busy seconds in a row add an isolate; a quiet one starts the count again", () => {
  const policy = new ScaleUpPolicy();
  // 0.8 of a core over a second, with one isolate: busy (0.75 per isolate).
  assert.equal(policy.sample(800, 1000, 1), false);
  assert.equal(policy.sample(800, 1000, 1), false);
  assert.equal(policy.sample(500, 1000, 1), false, "a quiet second");
  assert.equal(policy.sample(800, 1000, 1), false);
  assert.equal(policy.sample(900, 1000, 1), false);
  assert.equal(policy.sample(1000, 1000, 1), true, "the third busy second in a row");
  // The count starts again after an isolate was added.
  assert.equal(policy.sample(1000, 1000, 1), false);
});

Deno.test("scaling: busy is measured per running isolate, and a zero-length sample is quiet", () => {
  const policy = new ScaleUpPolicy({ busyCores: 0.5, samples: 1 });
  assert.equal(policy.sample(900, 1000, 2), false, "0.9 cores for two isolates is not busy");
  assert.equal(policy.sample(1000, 1000, 2), true, "1.0 core for two isolates is");
  assert.equal(policy.sample(10, 0, 1), false);
  assert.equal(policy.sample(499, 1000, 1), false);
  assert.equal(policy.sample(500, 1000, 1), true);
});

/** Connections each isolate accepted on `service`. */
function perIsolate(service: object): number[] {
  return (service as { connectionsPerIsolate: () => number[] }).connectionsPerIsolate();
}

Deno.test("scaling: a worker added under load runs the listener as last updated, shares its replay memory, takes later updates and retires", async () => {
  const lines: string[] = [];
  const logger = createLogger("info", (line) => lines.push(line));
  let busy = false;
  const method = "aes-128-gcm";
  const port = freePort();
  /** The listener's config with `password`; no grace period, so a failure does not wait 30 s. */
  const config = (password: string) =>
    serverConfig(method, { port, password, handshakeTimeout: 1, gracePeriod: 0 });
  const echo = startEchoServer();
  const locals: { close(): Promise<void> }[] = [];
  let pool: Awaited<ReturnType<typeof startWorkers>> | undefined;
  let service: Awaited<ReturnType<NonNullable<typeof pool>["start"]>> | undefined;
  let forwarder: ReturnType<typeof recordingForwarder> | undefined;
  /** One session through a local with `password` (to `serverPort`); true when it echoed. */
  const echoes = async (password: string, serverPort = port) => {
    const local = await startLocal(localConfig(method, serverPort, { password }), { graceMs: 0 });
    locals.push(local);
    const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echo.port));
    try {
      if (reply !== 0) return false;
      await writeAll(conn, Uint8Array.of(42));
      const got = new Uint8Array(1);
      return (await conn.read(got)) === 1 && got[0] === 42;
    } catch {
      return false;
    } finally {
      conn.close();
    }
  };
  const ended = () => Object.values(service!.stats.statuses).reduce((sum, n) => sum + n, 0);
  /** New sessions with `password` until one lands on the worker; each must echo. */
  const onTheWorker = async (password: string) => {
    const before = perIsolate(service!)[1] ?? 0;
    for (let tries = 0; (perIsolate(service!)[1] ?? 0) === before; tries++) {
      assert.ok(tries < 60, `60 sessions all landed on the main isolate`);
      const endedBefore = ended();
      assert.ok(await echoes(password), `a session with "${password}" failed`);
      await waitFor(() => ended() === endedBefore + 1, 5000, "the session's end");
    }
    assert.equal(service!.stats.statuses.OK, ended(), JSON.stringify(service!.stats.statuses));
  };
  try {
    pool = await startWorkers(undefined, {
      // server_worker.ts, its listener starts slowed down (see there).
      module: new URL("./_slow_start_worker.ts", import.meta.url),
      logger,
      logLevel: "warn",
      cores: 2,
      scaling: { sampleMs: 10, policy: { sample: () => busy } },
    });
    service = await pool.start(
      config("first key"),
      (config, shared) => startListener(config, { logger, graceMs: 0, ...shared }),
    );
    forwarder = recordingForwarder(port);
    assert.equal(pool.isolates, 1, "no worker before any load");
    assert.equal(pool.maxIsolates, 2);
    assert.ok(lines.some((line) => line.includes("up to 2 as load asks")), lines.join("\n"));
    assert.deepEqual(perIsolate(service), [0], "a metric row only for the isolate running");

    // A reload before the worker exists: the key changes.
    service.update(config("second key"));
    // A session with the new key, recorded: the main isolate remembers its salt.
    assert.ok(await echoes("second key", forwarder.port));
    await waitFor(() => service!.stats.statuses.OK === 1, 5000, "the recorded session's end");
    const flight = forwarder.flights()[0]!;
    assert.ok(flight.length > 32, `${flight.length} bytes recorded`);

    busy = true;
    // The worker is in the pool as soon as its start for the listener is sent: an update sent
    // now reaches it while that start is still under way, and must not be lost.
    const until = performance.now() + 20_000;
    while (pool.isolates < 2) {
      assert.ok(performance.now() < until, "no worker added in 20 s");
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    service.update(config("third key"));
    await waitFor(() => lines.some((line) => line.includes("worker 1 added")), 20_000, "worker");
    assert.equal(pool.isolates, 2);
    await onTheWorker("third key");

    // The recorded first flight (second key) is no longer valid: a key back to it, then the
    // flight replayed until one copy lands on the worker, refused there too.
    service.update(config("second key"));
    await onTheWorker("second key");
    const landed: number[] = [];
    while (!landed.includes(1)) {
      assert.ok(landed.length < 60, "60 replays all landed on the main isolate");
      const before = { counts: perIsolate(service), ended: ended() };
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, flight);
      conn.close();
      await waitFor(() => ended() === before.ended + 1, 5000, "the replay's end");
      const after = perIsolate(service);
      landed.push(after[1]! > before.counts[1]! ? 1 : 0);
      assert.equal(
        service.stats.statuses.ERR_REPLAY,
        landed.length,
        `replay ${landed.length} (on isolate ${landed.at(-1)}) was not refused: ` +
          JSON.stringify(service.stats.statuses),
      );
    }

    // Retired in both isolates: once drained, nothing accepts on the port.
    const { drained } = await service.retire();
    assert.ok(await settledWithin(drained, 10_000), "the retired listener did not drain in 10 s");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    for (const local of locals) await local.close();
    await forwarder?.close();
    await service?.close();
    await pool?.close();
    await echo.close();
  }
});
