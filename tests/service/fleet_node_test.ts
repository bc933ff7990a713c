/**
 * service/fleet_node.ts in one process, with a real redis-server: the config's users seed an
 * empty fleet and the fleet's users win from then on, a config reload included; a user the
 * listener could not use never reaches Redis; with Redis down the API's user changes fail with
 * 503 and change nothing; bytes reach the fleet once (a reset counter is not counted twice).
 */
import assert from "node:assert/strict";
import type { ServerConfig } from "../../config/types.ts";
import { silentLogger } from "../../relay/log.ts";
import { checkListenerKeys, startServer, updatableInPlace } from "../../server.ts";
import { apiHandler } from "../../service/api.ts";
import { Fleet } from "../../service/fleet.ts";
import { FleetNode } from "../../service/fleet_node.ts";
import { ServerSupervisor } from "../../service/supervisor.ts";
import { serverConfig } from "../e2e/_harness.ts";
import { randomPsk } from "../e2e/_udp_harness.ts";
import { freePort } from "../interop/_peers.ts";
import { redisTest, startRedis } from "./_redis.ts";
import { Redis } from "npm:ioredis@6.0.0";

const METHOD = "2022-blake3-aes-128-gcm";

function supervisor(): ServerSupervisor {
  return new ServerSupervisor({
    start: (config) => startServer(config, { graceMs: 0 }),
    canUpdate: updatableInPlace,
    logger: silentLogger,
  });
}

function node(fleet: Fleet, running: ServerSupervisor): FleetNode {
  return new FleetNode({
    fleet,
    supervisor: running,
    buildListener: () => {
      throw new Error("no listeners in this test");
    },
    checkConfig: checkListenerKeys,
    logger: silentLogger,
    sampleIntervalMs: 50,
  });
}

const names = (config: ServerConfig) => (config.users ?? []).map((u) => u.name).sort();

redisTest("fleet node: users from the fleet, checked writes, 503 while down", async (t, binary) => {
  await using redis = await startRedis(binary);
  const ipsk = randomPsk(16);
  const port = freePort();
  const config = serverConfig(METHOD, {
    port,
    password: ipsk,
    users: [{ name: "alice", password: randomPsk(16) }, { name: "bob", password: randomPsk(16) }],
  });
  const fleets: Fleet[] = [];
  const connect = async (name: string) => {
    const fleet = await Fleet.connect({ url: redis.url, prefix: "fn", node: name });
    fleets.push(fleet);
    return fleet;
  };
  const running: ServerSupervisor[] = [];
  const nodes: FleetNode[] = [];
  try {
    const first = supervisor();
    running.push(first);
    const fleet1 = await connect("a");
    const node1 = node(fleet1, first);
    nodes.push(node1);
    await node1.prepare([config]);
    await first.startAll([config]);
    node1.start();

    await t.step("the config seeds an empty fleet", async () => {
      assert.deepEqual([...(await fleet1.loadUsers(port)).keys()].sort(), ["alice", "bob"]);
    });

    await t.step("the fleet's users win over a config reload", async () => {
      const carol = randomPsk(16);
      await fleet1.putUser(port, "carol", { password: carol });
      const entry = first.listeners[0]!;
      const deadline = Date.now() + 5000;
      while (!names(entry.config).includes("carol")) {
        assert.ok(Date.now() < deadline, "carol never arrived");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // The file still names alice and bob only: a reload must not drop carol.
      await first.apply([config]);
      assert.deepEqual(names(first.listeners[0]!.config), ["alice", "bob", "carol"]);
    });

    await t.step("a reload's user changes go to the fleet; the fleet's others stay", async () => {
      const edited = {
        ...config,
        users: [config.users![0]!, { name: "frank", password: randomPsk(16) }],
      };
      await node1.applyConfigUsers([config], [edited]);
      await first.apply([edited]);
      assert.deepEqual([...(await fleet1.loadUsers(port)).keys()].sort(), [
        "alice",
        "carol",
        "frank",
      ]);
      assert.deepEqual(names(first.listeners[0]!.config), ["alice", "carol", "frank"]);
      // Put back for the steps below.
      await node1.applyConfigUsers([edited], [config]);
      await first.apply([config]);
      assert.deepEqual(names(first.listeners[0]!.config), ["alice", "bob", "carol"]);
    });

    await t.step("a second node starts with the fleet's users, not its config's", async () => {
      const second = supervisor();
      running.push(second);
      const node2 = node(await connect("b"), second);
      nodes.push(node2);
      // The same fleet listener (port) on another host, with a config that disagrees.
      const other = serverConfig(METHOD, {
        address: "127.0.0.2",
        port,
        password: ipsk,
        users: [{ name: "zed", password: randomPsk(16) }],
      });
      await node2.prepare([other]);
      await second.startAll([other]);
      assert.deepEqual(names(second.listeners[0]!.config), ["alice", "bob", "carol"]);
    });

    await t.step("a panel writing Redis as the README shows reaches the listener", async () => {
      const raw = new Redis(redis.url);
      try {
        const key = randomPsk(16);
        await raw.hset(
          `fn:users:${port}`,
          "gina",
          JSON.stringify({
            password: key,
            dataLimit: 5,
            expiresAt: 1800000000000,
            maxClientIps: 2,
          }),
        );
        await raw.publish("fn:changes", JSON.stringify({ hash: `users:${port}` }));
      } finally {
        raw.disconnect();
      }
      const entry = first.listeners[0]!;
      const deadline = Date.now() + 5000;
      while (!names(entry.config).includes("gina")) {
        assert.ok(Date.now() < deadline, "gina never arrived");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const gina = entry.config.users!.find((u) => u.name === "gina")!;
      assert.equal(gina.dataLimit, 5);
      assert.equal(gina.expiresAt, 1800000000000);
      assert.equal(gina.maxClientIps, 2);
      await fleet1.deleteUser(port, "gina");
    });

    await t.step("a key the listener cannot use never reaches Redis", async () => {
      const entry = first.listeners[0]!;
      await assert.rejects(() => node1.putUser(entry, { name: "dave", password: "short" }));
      assert.equal((await fleet1.loadUsers(port)).has("dave"), false);
      assert.equal(names(entry.config).includes("dave"), false);
    });

    await t.step("with Redis down the API answers 503 and changes nothing", async () => {
      const handler = apiHandler({ supervisor: first, version: "test", userStore: node1 });
      await redis.kill();
      const deadline = Date.now() + 5000;
      while (fleet1.state === "up") {
        assert.ok(Date.now() < deadline, "fleet still up");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const response = await handler(
        new Request("http://x/users", {
          method: "POST",
          body: JSON.stringify({ username: "erin", uPSK: randomPsk(16) }),
        }),
      );
      assert.equal(response.status, 503, await response.text());
      assert.equal(names(first.listeners[0]!.config).includes("erin"), false);
      const removed = await handler(new Request("http://x/users/alice", { method: "DELETE" }));
      assert.equal(removed.status, 503);
      assert.ok(names(first.listeners[0]!.config).includes("alice"));
    });
  } finally {
    nodes.forEach((n) => n.close());
    for (const s of running) await s.closeAll();
    for (const fleet of fleets) await fleet.close();
  }
});

redisTest(
  "fleet node: started while Redis is down, it takes the fleet's users once Redis is up",
  async (
    _t,
    binary,
  ) => {
    const redisPort = freePort();
    const ipsk = randomPsk(16);
    const port = freePort();
    const config = serverConfig(METHOD, {
      port,
      password: ipsk,
      users: [{ name: "alice", password: randomPsk(16) }],
    });
    const running = supervisor();
    const fleet = await Fleet.connect({
      url: `redis://127.0.0.1:${redisPort}`,
      prefix: "late",
      node: "late",
      connectWaitMs: 50,
      backoff: { minMs: 50, maxMs: 200 },
    });
    const late = node(fleet, running);
    try {
      assert.equal(fleet.state, "down");
      await late.prepare([config]);
      await running.startAll([config]);
      late.start();
      assert.deepEqual(names(running.listeners[0]!.config), ["alice"], "the config's users serve");

      await using redis = await startRedis(binary, { port: redisPort });
      const other = await Fleet.connect({ url: redis.url, prefix: "late", node: "panel" });
      try {
        await other.putUser(port, "bob", { password: randomPsk(16) });
        // Whether the node seeded alice first (it found the fleet empty) or not, it ends up
        // running exactly the fleet's list, bob included.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const inFleet = [...(await other.loadUsers(port)).keys()].sort().join();
          const served = names(running.listeners[0]!.config).join();
          if (inFleet === served && served.includes("bob")) break;
          assert.ok(Date.now() < deadline, `the node runs ${served}, the fleet has ${inFleet}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await other.close();
      }
    } finally {
      late.close();
      await running.closeAll();
      await fleet.close();
    }
  },
);

redisTest(
  "fleet node: each byte reaches the fleet once (re-added user, cleared counters, shutdown)",
  async (
    _t,
    binary,
  ) => {
    await using redis = await startRedis(binary);
    const port = freePort();
    const config = serverConfig(METHOD, {
      port,
      password: randomPsk(16),
      users: [{ name: "alice", password: randomPsk(16) }, { name: "bob", password: randomPsk(16) }],
    });
    const running = supervisor();
    const fleet = await Fleet.connect({ url: redis.url, prefix: "bytes", node: "one" });
    const reader = await Fleet.connect({ url: redis.url, prefix: "bytes", node: "reader" });
    const counting = node(fleet, running);
    try {
      await counting.prepare([config]);
      await running.startAll([config]);
      const entry = () => running.listeners[0]!;
      const alice = () => entry().service.stats.users["alice"]!;
      // Bytes from before the node started (a restored state file) are not news.
      alice().bytesUplink = 7000;
      counting.start();
      const fleetTotal = async (expected: number) => {
        const deadline = Date.now() + 5000;
        for (;;) {
          await fleet.flush();
          const total = await reader.usage("alice");
          if (total === expected) return;
          assert.ok(Date.now() < deadline, `alice's fleet total ${total}, expected ${expected}`);
          await new Promise((resolve) => setTimeout(resolve, 60));
        }
      };
      alice().bytesUplink += 600;
      alice().bytesDownlink += 400;
      await fleetTotal(1000);

      // Removed and added back: her counter stays, and so does what the fleet counted of it.
      await counting.deleteUser(entry(), "alice");
      await counting.putUser(entry(), { name: "alice", password: randomPsk(16) });
      counting.countersClearing(); // (takes a sample now)
      await fleetTotal(1000);

      // Zeroed by the API right after new bytes: those still reach the fleet.
      alice().bytesUplink += 500;
      const handler = apiHandler({ supervisor: running, version: "test", userStore: counting });
      const cleared = await handler(new Request("http://x/stats?clear=true"));
      assert.equal(cleared.status, 200);
      assert.equal(alice().bytesUplink, 0);
      await fleetTotal(1500);

      // At shutdown: the last bytes, moved after the last sample, count too.
      alice().bytesDownlink += 300;
      await running.closeAll();
      counting.close();
      await fleetTotal(1800);
    } finally {
      counting.close();
      await running.closeAll();
      await reader.close();
      await fleet.close();
    }
  },
);
