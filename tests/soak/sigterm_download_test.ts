/**
 * Soak: SIGTERM during a slow download.
 *
 * ```
 *   client ─SOCKS5─▶ local (in-process) ══▶ server (subprocess, --grace-period G) ─▶ throttled source
 * ```
 *
 * The source sends a fixed pseudo-random stream at a set rate. Once a fifth of it has arrived
 * the server gets SIGTERM: it must refuse new connections, let the download run to its end
 * (byte count and SHA-256 equal on both sides) within the grace period, and then exit 0 on its
 * own, without waiting out the rest of the grace period. tests/e2e/shutdown_test.ts covers the
 * other half: a session still open when the grace period ends is cut.
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startLocal } from "../../local.ts";
import { writeAll } from "../../relay/io.ts";
import { localConfig, localhostTarget, pattern, socksConnect } from "../e2e/_harness.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import {
  byMode,
  METHOD,
  PASSWORD,
  pause,
  report,
  spawnServing,
  waitUntil,
  within,
} from "./_soak.ts";

const MiB = 1024 * 1024;
const TOTAL_BYTES = byMode(4 * MiB, 50 * MiB);
const BYTES_PER_SECOND = byMode(2 * MiB, 5 * MiB);
const GRACE_S = byMode(10, 30);
const PIECE = 64 * 1024;
/** SIGTERM goes once this share of the download has arrived. */
const SIGTERM_AT = 0.2;

interface ThrottledSource {
  port: number;
  /** SHA-256 of what was sent, once the one download has been sent. */
  sent: Promise<string>;
  close(): Promise<void>;
}

/** Serves one connection: `total` bytes of `pattern` at `rate` bytes/s, then a half-close. */
function startThrottledSource(total: number, rate: number): ThrottledSource {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sent = (async () => {
    using conn = await listener.accept();
    const hash = createHash("sha256");
    const started = performance.now();
    let count = 0;
    for (const piece of pattern(total, 7, PIECE)) {
      await writeAll(conn, piece);
      hash.update(piece);
      count += piece.length;
      // Pace by the schedule, not per piece, so delays do not add up.
      const due = started + (count / rate) * 1000;
      await pause(Math.max(0, due - performance.now()));
    }
    await conn.closeWrite();
    while ((await conn.read(new Uint8Array(1024))) !== null) { /* until the peer closes */ }
    return hash.digest("hex");
  })();
  sent.catch(() => {}); // awaited by the test
  return {
    port: listener.addr.port,
    sent,
    close: async () => {
      listener.close();
      await sent.catch(() => {});
    },
  };
}

Deno.test(`soak: SIGTERM during a ${TOTAL_BYTES / MiB} MiB download at ${BYTES_PER_SECOND / MiB} MiB/s: it completes in the grace period, then the server exits`, async () => {
  const serverPort = freePort();
  await using server = spawnServing([
    ...["server", "-v", "-s", "127.0.0.1", "-p", `${serverPort}`, "-k", PASSWORD, "-m", METHOD],
    ...["--allow-private-targets", "--grace-period", `${GRACE_S}`],
  ]);
  await waitForTcpPort(serverPort, { exited: server.status });
  const source = startThrottledSource(TOTAL_BYTES, BYTES_PER_SECOND);
  const local = await startLocal(localConfig(METHOD, serverPort, { password: PASSWORD }), {
    graceMs: 0,
  });
  try {
    const { conn } = await socksConnect(local.addr.port, localhostTarget(source.port));
    const hash = createHash("sha256");
    let received = 0;
    let signalledAt: number | undefined;
    const started = performance.now();
    const downloadLimitMs = (TOTAL_BYTES / BYTES_PER_SECOND + GRACE_S + 10) * 1000;
    await within(
      conn,
      downloadLimitMs,
      "the download",
      (async () => {
        const buffer = new Uint8Array(PIECE);
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          hash.update(buffer.subarray(0, n));
          received += n;
          if (signalledAt === undefined && received >= TOTAL_BYTES * SIGTERM_AT) {
            server.kill("SIGTERM");
            signalledAt = performance.now();
          }
        }
      })(),
    );
    const doneAt = performance.now();
    conn.close();
    assert.ok(signalledAt !== undefined, "SIGTERM was sent");
    assert.equal(received, TOTAL_BYTES, `the download was cut short:\n${server.log()}`);
    // Once the listener is closed, a new connection is refused.
    await waitUntil(() => server.log().includes("Shutting down"), 5_000, "the shutdown line");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: serverPort }),
      Deno.errors.ConnectionRefused,
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      server.status,
      new Promise<undefined>((resolve) =>
        timer = setTimeout(() => resolve(undefined), (GRACE_S + 5) * 1000)
      ),
    ]);
    clearTimeout(timer);
    const exitedAt = performance.now();
    assert.ok(status, `the server did not exit within ${GRACE_S + 5} s:\n${server.log()}`);

    const sentHash = await source.sent;
    const receivedHash = hash.digest("hex");
    report("sigterm download", {
      bytes: received,
      rate_mib_s: BYTES_PER_SECOND / MiB,
      grace_s: GRACE_S,
      sigterm_after_ms: signalledAt - started,
      download_ms: doneAt - started,
      done_after_sigterm_ms: doneAt - signalledAt,
      exit_after_sigterm_ms: exitedAt - signalledAt,
      exit_code: status.code,
      sha256_match: `${receivedHash === sentHash}`,
    });
    assert.equal(receivedHash, sentHash, "the download's SHA-256");
    assert.ok(doneAt - signalledAt < GRACE_S * 1000, "the download completed in the grace period");
    assert.equal(status.code, 0, server.log());
    // It left when its last session ended, not at the end of the grace period.
    assert.ok(exitedAt - signalledAt < GRACE_S * 1000, "the server exited before the grace ended");
    assert.doesNotMatch(server.log(), /ERR_SHUTDOWN/);
  } finally {
    await local.close();
    await source.close();
  }
});
