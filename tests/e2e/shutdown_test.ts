/**
 * Graceful shutdown (and the metrics endpoint) as an operator meets them: `ssdeno server
 * --grace-period S --metrics H:P` in a subprocess,
 * SIGTERM with a session live. New connections are refused at once, the live session keeps
 * working through the grace period, is cut at its end with `ERR_SHUTDOWN`, and the process
 * exits 0.
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { writeAll } from "../../relay/io.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";
import {
  localConfig,
  localhostTarget,
  readAll,
  socksConnect,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const METHOD = "aes-128-gcm";
const GRACE_S = 2;

Deno.test("SIGTERM: no new sessions, live ones go on for the grace period, then ERR_SHUTDOWN", async () => {
  const echo = startEchoServer();
  const port = freePort();
  const metricsPort = freePort();
  const child = spawnSsdeno([
    ...["server", "-v", "-s", "127.0.0.1", "-p", `${port}`, "-k", "e2e-password", "-m", METHOD],
    ...["--allow-private-targets", "--grace-period", `${GRACE_S}`],
    ...["--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  const log = child.log;
  const local = await startLocal(localConfig(METHOD, port), { graceMs: 0 });
  try {
    await waitForTcpPort(port, { exited: child.status });
    const { conn } = await socksConnect(local.addr.port, localhostTarget(echo.port));
    const ping = async (byte: number) => {
      await writeAll(conn, Uint8Array.of(byte));
      const got = new Uint8Array(1);
      assert.equal(await conn.read(got), 1);
      assert.equal(got[0], byte);
    };
    await ping(1);
    // --metrics serves the live counters.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /^ssdeno_sessions_live 1$/m);
    assert.match(metrics, /^shadowsocks_build_info\{version="[^"]+"\} 1$/m);
    // SIGHUP (a reload request) must not end the process: it logs and keeps serving.
    child.kill("SIGHUP");
    await waitFor(() => log().includes("SIGHUP: reloading"), 5000, "the SIGHUP line");
    await ping(3);

    const signalled = performance.now();
    child.kill("SIGTERM");
    await waitFor(
      () => log().includes("Shutting down: no new sessions; 1 live session"),
      5000,
      "the line",
    );
    // The listener is closed: a new TCP connection is refused.
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
    // The live session still relays during the grace period.
    await ping(2);
    // At its end the session is cut, the process exits 0.
    assert.equal((await readAll(conn)).length, 0);
    const cutAfter = (performance.now() - signalled) / 1000;
    conn.close();
    const status = await child.status;
    assert.equal(status.code, 0, log());
    assert.ok(cutAfter >= GRACE_S - 0.2 && cutAfter < GRACE_S + 3, `cut after ${cutAfter} s`);
    await child.close();
    assert.match(log(), /server 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+ ERR_SHUTDOWN/);
  } finally {
    await child.close();
    await local.close();
    await echo.close();
  }
});
