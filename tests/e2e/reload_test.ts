/**
 * SIGHUP reload as an operator meets it (issue 11): `ssdeno server -c FILE` in a subprocess, the
 * file rewritten, SIGHUP sent, traffic flowing through our local during each change:
 * users added and removed on a 2022 multi-user port (only the removed user's session is cut),
 * a second port added and removed, a method changed (the old sessions run on, new ones use the
 * new method), and an invalid file (logged, the running config stays).
 */
import assert from "node:assert/strict";
import type { LocalConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { writeAll } from "../../relay/io.ts";
import type { RunningService } from "../../relay/service.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { randomPsk } from "./_udp_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";
import {
  localConfig,
  localhostTarget,
  readAll,
  socksConnect,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const METHOD = "2022-blake3-aes-128-gcm";

Deno.test("SIGHUP applies users, ports and methods without dropping the sessions it keeps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-reload-" });
  const file = `${dir}/server.json`;
  const port = freePort();
  const ipsk = randomPsk(16);
  const keys = { alice: randomPsk(16), bob: randomPsk(16), carol: randomPsk(16) };
  const users = (...names: (keyof typeof keys)[]) =>
    names.map((name) => ({ name, password: keys[name] }));
  const write = (servers: object[]) =>
    Deno.writeTextFile(
      file,
      // A short handshake deadline: refused clients are drained for it before they learn.
      JSON.stringify({ servers, allow_private_targets: true, handshake_timeout: 1 }),
    );
  const multiUser = (...names: (keyof typeof keys)[]) => ({
    server: "127.0.0.1",
    server_port: port,
    method: METHOD,
    password: ipsk,
    users: users(...names),
  });
  await write([multiUser("alice", "bob")]);

  const echo = startEchoServer();
  const child = spawnSsdeno(["server", "-c", file, "-v"]);
  const log = child.log;
  const locals: RunningService[] = [];
  const localFor = async (overrides: Partial<LocalConfig>, serverPort = port) => {
    const local = await startLocal({ ...localConfig(METHOD, serverPort), ...overrides }, {
      graceMs: 0,
    });
    locals.push(local);
    return local;
  };
  const asUser = (name: keyof typeof keys) => localFor({ password: `${ipsk}:${keys[name]}` });
  /** An open session through `local` that echoes one byte at a time. */
  const openSession = async (local: RunningService) => {
    const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echo.port));
    assert.equal(reply, 0);
    const ping = async (byte: number) => {
      await writeAll(conn, Uint8Array.of(byte));
      const got = new Uint8Array(1);
      if ((await conn.read(got)) !== 1 || got[0] !== byte) throw new Error("no echo");
    };
    await ping(0);
    return { conn, ping };
  };
  /** Whether a new session through `local` works now. */
  const works = async (local: RunningService) => {
    try {
      const session = await openSession(local);
      session.conn.close();
      return true;
    } catch {
      return false; // refused, or no echo: the answer is "no"
    }
  };
  let reloads = 0;
  /** Sends SIGHUP and waits until the process has started this reload; callers wait for its lines. */
  const reload = async () => {
    reloads++;
    child.kill("SIGHUP");
    await waitFor(() => log().split("SIGHUP: reloading").length - 1 === reloads, 5000, "reload");
  };

  try {
    await waitForTcpPort(port, { exited: child.status });
    const alice = await asUser("alice");
    const bob = await asUser("bob");
    const carol = await asUser("carol");
    const aliceSession = await openSession(alice);
    const bobSession = await openSession(bob);
    assert.equal(await works(carol), false, "carol is not a user yet");

    // Add carol, remove bob: bob's live session is cut, alice's goes on, carol works.
    await write([multiUser("alice", "carol")]);
    await reload();
    await waitFor(() => log().includes("users added: carol; users removed: bob"), 5000, "changes");
    assert.equal((await readAll(bobSession.conn).catch(() => new Uint8Array())).length, 0);
    bobSession.conn.close();
    await aliceSession.ping(1);
    assert.equal(await works(carol), true);
    assert.equal(await works(bob), false);

    // An invalid file: logged, nothing changes.
    await Deno.writeTextFile(file, "{ not json");
    await reload();
    await waitFor(() => log().includes("reload failed, the running config stays"), 5000, "error");
    await aliceSession.ping(2);
    assert.equal(await works(carol), true);

    // A second port appears (picked now: a port picked early may be in use by now), then the
    // method of the first changes.
    const secondPort = freePort();
    const plain = {
      server: "127.0.0.1",
      server_port: secondPort,
      method: "aes-256-gcm",
      password: "second-port",
    };
    await write([multiUser("alice", "carol"), plain]);
    await reload();
    await waitFor(() => log().includes(`127.0.0.1:${secondPort} added`), 5000, `added\n${log()}`);
    const second = await localFor(
      { method: "aes-256-gcm", password: "second-port" },
      secondPort,
    );
    assert.equal(await works(second), true);

    const newKey = "reloaded-method-password";
    await write([{
      server: "127.0.0.1",
      server_port: port,
      method: "chacha20-ietf-poly1305",
      password: newKey,
    }]);
    await reload();
    await waitFor(() => log().includes(`127.0.0.1:${port} replaced`), 5000, `replaced\n${log()}`);
    await waitFor(() => log().includes(`127.0.0.1:${secondPort} removed`), 5000, "removed");
    // alice's session started under the old listener: it runs on.
    await aliceSession.ping(3);
    const chacha = await localFor({ method: "chacha20-ietf-poly1305", password: newKey });
    assert.equal(await works(chacha), true);
    assert.equal(await works(alice), false, "the old method is gone for new sessions");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: secondPort }),
      Deno.errors.ConnectionRefused,
    );
    aliceSession.conn.close();
  } finally {
    for (const local of locals) await local.close();
    child.kill("SIGTERM");
    await child.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});
