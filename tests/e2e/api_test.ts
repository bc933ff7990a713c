/**
 * The Server Management API (issue 11) driving a live 2022 multi-user listener while our local
 * carries traffic: users listed, added, rekeyed and deleted (in the spec's, shadowsocks-go's and
 * sing-box's route shapes), counters read and cleared, the token required, bad input refused.
 */
import assert from "node:assert/strict";
import { buildServerConfigs } from "../../config/load.ts";
import type { ServerConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import type { RunningService } from "../../relay/service.ts";
import { silentLogger } from "../../relay/log.ts";
import { startServer, updatableInPlace } from "../../server.ts";
import { startApi } from "../../service/api.ts";
import { ServerSupervisor } from "../../service/supervisor.ts";
import { randomPsk } from "./_udp_harness.ts";
import {
  echoThrough,
  localConfig,
  localhostTarget,
  serverConfig,
  socksConnect,
  startEchoServer,
} from "./_harness.ts";

const METHOD = "2022-blake3-aes-128-gcm";

Deno.test("the management API changes users and reads counters on a live listener", async () => {
  const ipsk = randomPsk(16);
  const keys = { alice: randomPsk(16), bob: randomPsk(16), carol: randomPsk(16) };
  const config: ServerConfig = serverConfig(METHOD, {
    password: ipsk,
    users: [{ name: "alice", password: keys.alice }, { name: "bob", password: keys.bob }],
    handshakeTimeout: 1,
  });
  const supervisor = new ServerSupervisor({
    start: (c) => startServer(c, { graceMs: 0 }),
    canUpdate: updatableInPlace,
    logger: silentLogger,
  });
  await supervisor.startAll([config]);
  const port = supervisor.listeners[0]!.service.addr.port;
  const api = startApi({
    hostname: "127.0.0.1",
    port: 0,
    supervisor,
    version: "test",
    token: "s3cret-token",
  });
  const base = `http://127.0.0.1:${api.addr.port}`;
  const call = async (method: string, path: string, body?: unknown, token = "s3cret-token") => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined
        ? {}
        : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const echo = startEchoServer();
  const locals: RunningService[] = [];
  const works = async (name: keyof typeof keys, key = keys[name]) => {
    const local = await startLocal(localConfig(METHOD, port, { password: `${ipsk}:${key}` }), {
      graceMs: 0,
    });
    locals.push(local);
    const { conn } = await socksConnect(local.addr.port, localhostTarget(echo.port));
    try {
      await echoThrough(conn, 1000, 7);
      return true;
    } catch {
      return false; // refused: the server drained and closed
    }
  };
  try {
    assert.equal((await call("GET", "/", undefined, "wrong")).status, 401);
    assert.deepEqual((await call("GET", "/")).body, { server: "ssdeno test", apiVersion: "v1" });
    assert.deepEqual(
      (await call("GET", "/users")).body.users.map((u: { username: string }) => u.username),
      [
        "alice",
        "bob",
      ],
    );
    assert.equal(await works("alice"), true);
    assert.equal(await works("carol"), false);

    assert.equal(
      (await call("POST", "/users", { username: "carol", uPSK: keys.carol })).status,
      201,
    );
    assert.equal(await works("carol"), true);
    const carol = await call("GET", "/users/carol");
    assert.equal(carol.body.tcpSessions, 1);
    assert.ok(carol.body.uplinkBytes >= 1000, JSON.stringify(carol.body));

    // Rekey through sing-box's route (PUT), delete through shadowsocks-go's.
    const fresh = randomPsk(16);
    assert.equal((await call("PATCH", "/users/carol", { uPSK: keys.carol })).status, 400);
    assert.equal((await call("PUT", "/server/v1/users/carol", { uPSK: fresh })).status, 204);
    assert.equal(await works("carol"), false);
    assert.equal(await works("carol", fresh), true);
    assert.deepEqual((await call("GET", "/api/ssm/v1/servers")).body, [`${port}`]);
    assert.equal((await call("DELETE", `/api/ssm/v1/servers/${port}/users/bob`)).status, 204);
    assert.equal(await works("bob"), false);
    assert.equal((await call("GET", "/users/bob")).status, 404);

    const stats = await call("GET", "/stats?clear=true");
    assert.ok(stats.body.tcpSessions >= 5);
    assert.ok(
      stats.body.users.find((u: { username: string }) => u.username === "alice").tcpSessions >= 1,
    );
    const cleared = await call("GET", "/stats");
    assert.equal(
      cleared.body.users.every((u: { tcpSessions: number }) => u.tcpSessions === 0),
      true,
    );

    // Bad input: a 400 (or 404, 413) with an error field, and nothing changes.
    assert.equal((await call("POST", "/users", "{not json")).status, 400);
    assert.equal(
      (await call("POST", "/users", { username: "alice", uPSK: keys.alice })).status,
      400,
    );
    assert.equal((await call("POST", "/users", { username: "dave", uPSK: "short" })).status, 400);
    assert.equal((await call("POST", "/users", "x".repeat(20_000))).status, 413);
    // A body with no declared length (chunked) is capped while it is read.
    const chunked = await fetch(`${base}/users`, {
      method: "POST",
      headers: { authorization: "Bearer s3cret-token" },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 64; i++) controller.enqueue(new Uint8Array(1024).fill(32));
          controller.close();
        },
      }),
    });
    assert.equal(chunked.status, 413);
    await chunked.body?.cancel();
    assert.equal((await call("GET", "/api/ssm/v1/servers/1/users")).status, 404);
    assert.match((await call("GET", "/users/nobody")).body.error, /user not found/);
    assert.deepEqual(
      (await call("GET", "/users")).body.users.map((u: { username: string }) => u.username),
      ["alice", "carol"],
    );
    assert.equal(await works("alice"), true);
  } finally {
    for (const local of locals) await local.close();
    await api.close();
    await supervisor.closeAll();
    await echo.close();
  }
});

Deno.test("the API off loopback needs a token or a secret path", () => {
  const base = { server: "127.0.0.1", server_port: 1, password: "p", method: "aes-128-gcm" };
  assert.throws(() => buildServerConfigs({ ...base, api: "0.0.0.0:9000" }), /api_token/);
  assert.equal(buildServerConfigs({ ...base, api: "9000" }).api?.host, "127.0.0.1");
  assert.equal(
    buildServerConfigs({ ...base, api: "0.0.0.0:9000", api_token: "t" }).api?.token,
    "t",
  );
});
