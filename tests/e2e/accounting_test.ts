/**
 * Per-user accounting (issue 11): data limits refuse new sessions (and, with
 * `data_limit_cuts_live`, end live ones) and drop the user's datagrams; counters survive a
 * restart through `state_file`, so a limit is not reset by one.
 */
import assert from "node:assert/strict";
import type { ServerConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { datagramBytes, loopback, randomPsk, SocksUdpClient, UdpEcho } from "./_udp_harness.ts";
import { localConfig, serverConfig, waitFor } from "./_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";

const METHOD = "2022-blake3-aes-256-gcm";

Deno.test("a user over the data limit is refused new sessions and datagrams; others go on", async () => {
  await using http = startHttpFixture();
  const echo = new UdpEcho();
  const ipsk = randomPsk(32);
  const keys = { alice: randomPsk(32), bob: randomPsk(32) };
  const server = await startServer(
    serverConfig(METHOD, {
      password: ipsk,
      mode: "tcp_and_udp",
      users: [
        { name: "alice", password: keys.alice, dataLimit: 25_000 },
        { name: "bob", password: keys.bob },
      ],
    } as Partial<ServerConfig>),
    { graceMs: 0 },
  );
  const locals: RunningService[] = [];
  const localAs = async (name: keyof typeof keys) => {
    const local = await startLocal(
      localConfig(METHOD, server.addr.port, {
        password: `${ipsk}:${keys[name]}`,
        mode: "tcp_and_udp",
      }),
      { graceMs: 0 },
    );
    locals.push(local);
    return local;
  };
  try {
    const alice = await localAs("alice");
    const bob = await localAs("bob");
    const get = (local: RunningService) =>
      curlViaSocks(local.addr.port, http.url("/blob?size=15000"), { maxTimeSeconds: 5 });
    assert.equal((await get(alice)).code, 0, "15 000 of 25 000");
    assert.equal((await get(alice)).code, 0, "started under the limit: it may finish");
    await waitFor(() => server.stats.users["alice"]!.bytesDownlink > 25_000, 5000, "counted");
    assert.notEqual((await get(alice)).code, 0, "over the limit: refused");
    await waitFor(() => server.stats.statuses.ERR_AUTH === 1, 5000, "ERR_AUTH");
    assert.equal((await get(bob)).code, 0, "bob has no limit");

    const udp = await SocksUdpClient.open(alice.addr.port);
    try {
      await udp.send(loopback(echo.port), datagramBytes(10, 1));
      await waitFor(() => server.udpStats!.statuses.ERR_AUTH === 1, 5000, "the datagram refused");
      assert.equal(echo.echoed, 0);
    } finally {
      await udp.close();
    }
  } finally {
    for (const local of locals) await local.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("with data_limit_cuts_live, crossing the limit ends the user's live session", async () => {
  await using http = startHttpFixture();
  const ipsk = randomPsk(32);
  const key = randomPsk(32);
  const server = await startServer(
    serverConfig(METHOD, {
      password: ipsk,
      users: [{ name: "alice", password: key, dataLimit: 100_000 }],
      dataLimitCutsLive: true,
    } as Partial<ServerConfig>),
    { graceMs: 0 },
  );
  const local = await startLocal(
    localConfig(METHOD, server.addr.port, {
      password: `${ipsk}:${key}`,
    }),
    { graceMs: 0 },
  );
  try {
    const result = await curlViaSocks(local.addr.port, http.url("/blob?size=5000000"), {
      maxTimeSeconds: 10,
    });
    assert.notEqual(result.code, 0, "the download was cut");
    assert.ok(result.stdout.length < 1_000_000, `${result.stdout.length} bytes got through`);
  } finally {
    await local.close();
    await server.close();
  }
});

Deno.test("state_file keeps the counters across a restart, limits included", async () => {
  await using http = startHttpFixture();
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-state-" });
  const port = freePort();
  const ipsk = randomPsk(32);
  const key = randomPsk(32);
  await Deno.writeTextFile(
    `${dir}/server.json`,
    JSON.stringify({
      server: "127.0.0.1",
      server_port: port,
      method: METHOD,
      password: ipsk,
      users: [{ name: "alice", password: key, data_limit: 40_000 }],
      allow_private_targets: true,
      state_file: `${dir}/state.json`,
      grace_period: 1,
    }),
  );
  const run = async (fn: () => Promise<void>) => {
    const child = spawnSsdeno(["server", "-c", `${dir}/server.json`]);
    try {
      await waitForTcpPort(port, { exited: child.status });
      await fn();
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, child.log());
      await child.close();
    }
  };
  const local = await startLocal(localConfig(METHOD, port, { password: `${ipsk}:${key}` }), {
    graceMs: 0,
  });
  const get = () =>
    curlViaSocks(local.addr.port, http.url("/blob?size=30000"), { maxTimeSeconds: 5 });
  try {
    await run(async () => {
      assert.equal((await get()).code, 0);
    });
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.ok(saved.ports[`${port}`].users.alice.bytesDownlink >= 30_000, JSON.stringify(saved));
    await run(async () => {
      // 30 000 of 40 000 were used before the restart: one more, then refused.
      assert.equal((await get()).code, 0);
      assert.notEqual((await get()).code, 0);
    });
    const after = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.ok(after.ports[`${port}`].users.alice.bytesDownlink >= 60_000);
  } finally {
    await local.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a user past their expiry is refused; a reload that extends it lets them in", async () => {
  await using http = startHttpFixture();
  const ipsk = randomPsk(32);
  const keys = { alice: randomPsk(32), bob: randomPsk(32) };
  const past = Date.now() - 1000;
  const config = serverConfig(METHOD, {
    password: ipsk,
    users: [
      { name: "alice", password: keys.alice, expiresAt: past },
      { name: "bob", password: keys.bob, expiresAt: Date.now() + 3_600_000 },
    ],
  } as Partial<ServerConfig>);
  const server = await startServer(config, { graceMs: 0 });
  const locals: RunningService[] = [];
  try {
    const localAs = async (name: keyof typeof keys) => {
      const local = await startLocal(
        localConfig(METHOD, server.addr.port, { password: `${ipsk}:${keys[name]}` }),
        { graceMs: 0 },
      );
      locals.push(local);
      return local;
    };
    const get = (local: RunningService) =>
      curlViaSocks(local.addr.port, http.url("/blob?size=1000"), { maxTimeSeconds: 5 });
    const alice = await localAs("alice");
    assert.notEqual((await get(alice)).code, 0, "expired: refused");
    await waitFor(() => server.stats.statuses.ERR_AUTH === 1, 5000, "ERR_AUTH");
    assert.equal((await get(await localAs("bob"))).code, 0, "bob has not expired");
    server.update({
      ...config,
      users: config.users!.map((u) => u.name === "alice" ? { ...u, expiresAt: undefined } : u),
    } as ServerConfig);
    assert.equal((await get(alice)).code, 0, "no longer expires");
  } finally {
    for (const local of locals) await local.close();
    await server.close();
  }
});
