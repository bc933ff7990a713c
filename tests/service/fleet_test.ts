/**
 * Fleet mode against a real redis-server: three Fleet instances ("nodes") on one Redis share
 * salts, users, byte counts and heartbeats; Redis crashes, freezes and comes back empty.
 * Waits are on conditions, each with a bound; every Redis process is ended by its PID.
 */
import { Redis } from "npm:ioredis@6.0.0";
import { assertEquals, assertOk, assertRejects } from "../_assert.ts";
import { freePort, isCi } from "../interop/_peers.ts";
import {
  Fleet,
  type FleetListener,
  type FleetOptions,
  type FleetState,
  FleetUnavailableError,
  type FleetUser,
} from "../../service/fleet.ts";
import { APPLY_USAGE_LUA, UsageLedger } from "../../service/fleet_accounting.ts";
import {
  findOpenssl,
  makeTlsFiles,
  type RedisServer,
  redisTest,
  startRedis,
  startRedisCluster,
} from "./_redis.ts";

/** Short intervals, so that the tests take seconds, not minutes. */
const FAST: Omit<FleetOptions, "url" | "node"> = {
  backoff: { minMs: 20, maxMs: 200 },
  flushIntervalMs: 100,
  heartbeatIntervalMs: 200,
  saltTimeoutMs: 250,
  commandTimeoutMs: 500,
};

/** Polls `condition` every 10 ms until it holds; throws after `timeoutMs`. */
async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<number> {
  const start = performance.now();
  while (!(await condition())) {
    if (performance.now() - start > timeoutMs) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - start;
}

/** Three nodes on `redis`; `await using` closes them all. */
async function startNodes(
  redis: RedisServer,
  extra: Partial<FleetOptions> = {},
): Promise<[Fleet, Fleet, Fleet] & AsyncDisposable> {
  const fleets: [Fleet, Fleet, Fleet] = [
    await startNode(redis, "node1", extra),
    await startNode(redis, "node2", extra),
    await startNode(redis, "node3", extra),
  ];
  return Object.assign(fleets, {
    [Symbol.asyncDispose]: async () => {
      await Promise.all(fleets.map((fleet) => fleet.close()));
    },
  });
}

/** One node on `redis`, connected. */
async function startNode(
  redis: RedisServer,
  node: string,
  extra: Partial<FleetOptions> = {},
): Promise<Fleet> {
  const fleet = await Fleet.connect({ ...FAST, url: redis.url, node, ...extra });
  assertEquals(fleet.state, "up");
  return fleet;
}

/** A plain client for looking inside; `await using` quits it. */
async function rawClient(redis: RedisServer): Promise<Redis & AsyncDisposable> {
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await client.connect();
  return Object.assign(client, {
    [Symbol.asyncDispose]: async () => {
      const ended = new Promise((resolve) => client.once("end", resolve));
      await client.quit();
      await ended;
    },
  });
}

function randomSalt(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

// ---------------------------------------------------------------------------------------------
// Without Redis

Deno.test("UsageLedger counts, acknowledges and estimates the fleet total", () => {
  const ledger = new UsageLedger();
  ledger.add("bob", 100);
  ledger.add("bob", 50);
  ledger.add("bob", 0);
  ledger.add("bob", -5);
  assertEquals(ledger.pending(), [{ user: "bob", counted: 150 }]);
  assertEquals(ledger.estimate("bob"), 150);
  // Redis took 150; other nodes had 1000.
  ledger.acknowledge("bob", 150, 1150);
  assertEquals(ledger.pending(), []);
  ledger.add("bob", 10);
  assertEquals(ledger.estimate("bob"), 1160);
  assertEquals(ledger.unacknowledged(), 10);
  ledger.refresh("bob", 2150);
  assertEquals(ledger.estimate("bob"), 2160);
  // Redis lost its data: the whole count goes again, the estimate stays.
  ledger.forgetAcknowledged();
  assertEquals(ledger.pending(), [{ user: "bob", counted: 160 }]);
  assertEquals(ledger.estimate("bob"), 2160);
  ledger.track("carol");
  assertEquals(ledger.users(), ["bob", "carol"]);
  assertEquals(ledger.estimate("carol"), 0);
  assertEquals(ledger.estimate("nobody"), 0);
});

Deno.test("Fleet.connect() refuses invalid URLs and node names without echoing secrets", async () => {
  for (const url of ["http://127.0.0.1:6379", "redis://", "not a url", "redis://:secret@"]) {
    const error = await assertRejects(() => Fleet.connect({ url, node: "n" }), url);
    assertOk(error instanceof RangeError, `${url}: ${error}`);
    assertOk(!String(error).includes("secret"), String(error));
  }
  for (const node of ["", "a b", "a:b"]) {
    const error = await assertRejects(() => Fleet.connect({ url: "redis://127.0.0.1", node }));
    assertOk(error instanceof RangeError, `${node}: ${error}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Against redis-server

redisTest("checkSalt() at one node is a replay at the others until its TTL passes", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2, n3] = nodes;
  const salt = randomSalt();
  const checked = performance.now();
  assertEquals(await n1.checkSalt(salt, 300), "fresh");
  assertEquals(await n2.checkSalt(salt, 300), "replay");
  assertEquals(await n3.checkSalt(salt, 300), "replay");
  assertEquals(await n1.checkSalt(salt, 300), "replay");
  // Another salt is not affected.
  assertEquals(await n2.checkSalt(randomSalt(), 300), "fresh");
  // A replay check does not extend the first one's TTL.
  await waitUntil(async () => (await n2.checkSalt(salt, 300)) === "fresh", "the TTL", 3000);
  const elapsed = performance.now() - checked;
  assertOk(elapsed >= 299, `fresh again after ${elapsed.toFixed(0)} ms, before its 300 ms TTL`);
  assertEquals(await n3.checkSalt(salt, 300), "replay");
  assertEquals(n1.stats.salts, { fresh: 1, replay: 1, unavailable: 0 });

  assertEquals(n1.refuses("fresh"), false);
  assertEquals(n1.refuses("replay"), true);
  assertEquals(n1.refuses("unavailable"), false);
});

redisTest("a user put via one node reaches another node's watcher within 1 s", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2, n3] = nodes;
  const seen: ReadonlyMap<string, FleetUser>[] = [];
  const last = () => seen.at(-1);
  using _watch = n3.watchUsers(8388, (users) => seen.push(users));
  await waitUntil(() => seen.length === 1, "the first snapshot");
  assertEquals(last()!.size, 0);

  let start = performance.now();
  await n2.putUser(8388, "alice", { password: "pw-a", dataLimit: 1000 });
  const putMs = await waitUntil(() => last()?.get("alice")?.password === "pw-a", "alice", 1000);
  console.log(`fleet: user change seen by another node after ${putMs.toFixed(1)} ms`);
  assertEquals(last()!.get("alice"), { password: "pw-a", dataLimit: 1000 });

  await n2.putUser(8388, "alice", { password: "pw-b" });
  await waitUntil(() => last()?.get("alice")?.password === "pw-b", "alice's new key", 1000);
  assertEquals(last()!.get("alice"), { password: "pw-b" });

  // Another listener's users do not wake this watcher.
  const before = seen.length;
  await n1.putUser(8389, "zed", { password: "pw-z" });
  await n1.putUser(8388, "bob", { password: "pw-c" });
  await waitUntil(() => last()?.has("bob") === true, "bob", 1000);
  assertEquals(seen.length, before + 1);

  start = performance.now();
  assertEquals(await n1.deleteUser(8388, "alice"), true);
  assertEquals(await n1.deleteUser(8388, "alice"), false);
  await waitUntil(() => last()?.has("alice") === false, "alice's removal", 1000);
  assertOk(performance.now() - start < 1000);

  assertEquals(await n1.loadUsers(8388), new Map([["bob", { password: "pw-c" }]]));
  assertEquals(await n2.loadUsers(8389), new Map([["zed", { password: "pw-z" }]]));
  assertEquals((await n2.loadUsers(1)).size, 0);
  await assertRejects(() => n1.putUser(8388, "", { password: "x" }));
  await assertRejects(() => n1.putUser(8388, "x", { password: "x", dataLimit: -1 }));
});

redisTest("a listener added via one node (ss-manager add) reaches the others within 1 s", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2] = nodes;
  const seen: ReadonlyMap<number, FleetListener>[] = [];
  using _watch = n1.watchListeners((listeners) => seen.push(listeners));
  await waitUntil(() => seen.length === 1, "the first snapshot");
  const add = { server_port: 8400, password: "pw", method: "aes-128-gcm" };
  await n2.putListener(8400, add);
  await waitUntil(() => seen.at(-1)?.has(8400) === true, "the listener at node 1", 1000);
  assertEquals(seen.at(-1)!.get(8400), add);
  assertEquals(await n1.loadListeners(), new Map([[8400, add]]));
  assertEquals(await n2.deleteListener(8400), true);
  await waitUntil(() => seen.at(-1)?.size === 0, "the removal at node 1", 1000);
  await assertRejects(() => n2.putListener(0, add));
});

redisTest("byte counts added at two nodes sum at a third, and so does a quota", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2, n3] = nodes;
  n1.addBytes("bob", 1000);
  n3.addBytes("bob", 2500);
  assertEquals(await n1.flush(), true);
  assertEquals(await n3.flush(), true);
  assertEquals(await n2.usage("bob"), 3500);
  assertEquals(await n1.usage("bob"), 3500);

  // The per-byte path: synchronous, refreshed by the flush loop (100 ms here).
  assertEquals(n2.overQuota("carol", 1000), false);
  n1.addBytes("carol", 600);
  n3.addBytes("carol", 600);
  const lag = await waitUntil(() => n2.overQuota("carol", 1000), "carol over quota at node 2");
  console.log(`fleet: quota crossed at two nodes seen at a third after ${lag.toFixed(0)} ms`);
  assertEquals(n2.overQuota("carol", 1201), false);
  assertEquals(n1.overQuota("carol", 1200), true);
  assertEquals(n2.knownUsage("carol"), 1200);

  // Many small counts from every node, flushed on their own schedule: the total is exact.
  let expected = 3500;
  for (let i = 0; i < 300; i++) {
    const bytes = 1 + (i * 7919) % 1500;
    nodes[i % 3]!.addBytes("bob", bytes);
    expected += bytes;
    if (i % 50 === 0) {
      // Let the node's own flush loop run between the counts.
      const node = nodes[i % 3]!;
      const flushes = node.stats.flushes;
      await waitUntil(() => node.stats.flushes > flushes, "a flush of its own", 2000);
    }
  }
  await Promise.all(nodes.map((fleet) => fleet.flush()));
  assertEquals(await n2.usage("bob"), expected);
});

redisTest("the usage script applies a count once however often it is sent", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using raw = await rawClient(redis);
  const apply = async (field: string, boot: string, counted: number) =>
    Number(await raw.eval(APPLY_USAGE_LUA, 1, "u", field, boot, String(counted)));
  assertEquals(await apply("n:a", "boot1", 100), 100);
  assertEquals(await apply("n:a", "boot1", 100), 100, "a retried flush");
  assertEquals(await apply("n:a", "boot1", 90), 100, "a late, older flush");
  assertEquals(await apply("n:a", "boot1", 150), 150);
  assertEquals(await apply("n:b", "boot9", 50), 200, "another node");
  // Node a restarts: its new process counts from zero on top of the old one's 150.
  assertEquals(await apply("n:a", "boot2", 10), 210);
  assertEquals(await apply("n:a", "boot2", 10), 210);
  assertEquals(await apply("n:a", "boot2", 40), 240);
  assertEquals(await raw.hget("u", "n:a"), "boot2 150 40");
  // Past 2^32 and far from exponent notation.
  assertEquals(await apply("n:b", "boot9", 5_000_000_000_000), 5_000_000_000_190);
});

redisTest("Redis crashes and comes back empty: nodes reconnect and the totals are exact", async (
  _t,
  binary,
) => {
  let redis = await startRedis(binary);
  const port = redis.port;
  const changes: [string, FleetState][] = [];
  const fleets: Fleet[] = [];
  try {
    for (const node of ["node1", "node2", "node3"]) {
      fleets.push(
        await Fleet.connect({
          ...FAST,
          url: redis.url,
          node,
          onStateChange: (state) => changes.push([node, state]),
        }),
      );
    }
    const [n1, n2, n3] = fleets as [Fleet, Fleet, Fleet];
    const seen: ReadonlyMap<string, FleetUser>[] = [];
    using _watch = n3.watchUsers(8388, (users) => seen.push(users));
    await n2.putUser(8388, "alice", { password: "pw-a", dataLimit: 5000 });
    await waitUntil(() => seen.at(-1)?.has("alice") === true, "alice at node 3", 1000);
    using _listeners = n1.watchListeners(() => {});
    await n2.putListener(8400, { server_port: 8400, password: "pw" });
    await waitUntil(async () => (await n1.loadListeners()).size === 1, "the listener", 1000);
    n1.addBytes("bob", 1000);
    n3.addBytes("bob", 2000);
    // Dave's bytes were all flushed before the crash; nothing new comes during the outage.
    n1.addBytes("dave", 800);
    await Promise.all([n1.flush(), n3.flush()]);
    assertEquals(await n2.usage("bob"), 3000);
    assertEquals(await n2.usage("dave"), 800);

    await redis.kill();
    await waitUntil(() => fleets.every((f) => f.state === "down"), "every node down", 2000);
    let start = performance.now();
    assertEquals(await n1.checkSalt(randomSalt(), 10_000), "unavailable");
    const downMs = performance.now() - start;
    assertOk(downMs < 50, `checkSalt took ${downMs.toFixed(1)} ms while down`);
    n1.addBytes("bob", 400);
    n3.addBytes("bob", 700);
    n2.addBytes("bob", 50);
    assertEquals(await n1.flush(), false);
    assertEquals(n1.stats.unflushedBytes, 400);
    assertEquals(await n2.usage("bob"), 3050, "last total seen plus its own count");
    assertEquals(n2.overQuota("bob", 3050), true);
    await assertRejects(() => n2.putUser(8388, "x", { password: "y" }));
    const error = await assertRejects(() => n2.nodes());
    assertOk(error instanceof FleetUnavailableError);

    start = performance.now();
    redis = await startRedis(binary, { port });
    const listening = performance.now() - start;
    await waitUntil(() => fleets.every((f) => f.state === "up"), "every node up again", 5000);
    console.log(
      `fleet: Redis listening ${listening.toFixed(0)} ms after its start, 3 nodes up again ` +
        `${(performance.now() - start).toFixed(0)} ms after it (backoff 20 to 200 ms)`,
    );
    assertEquals(fleets.map((f) => f.reconnects), [1, 1, 1]);
    for (const node of ["node1", "node2", "node3"]) {
      assertEquals(changes.filter(([n]) => n === node).map(([, s]) => s), ["up", "down", "up"]);
    }

    // Every count goes again in full, once: 1000 + 2000 + 400 + 700 + 50.
    await waitUntil(async () => (await n2.usage("bob")) === 4150, "the exact total", 3000);
    await Promise.all(fleets.map((f) => f.flush()));
    await Promise.all(fleets.map((f) => f.flush()));
    assertEquals(await n2.usage("bob"), 4150);
    assertEquals(await n1.usage("bob"), 4150);
    assertEquals(await n2.usage("dave"), 800, "a count not touched during the outage");
    assertEquals(fleets.map((f) => f.stats.unflushedBytes), [0, 0, 0]);

    // The users Redis lost came back from node 3's copy; its watcher never saw them vanish.
    assertEquals(
      await n1.loadUsers(8388),
      new Map([["alice", { password: "pw-a", dataLimit: 5000 }]]),
    );
    assertOk(seen.slice(1).every((users) => users.has("alice")));
    assertEquals(
      await n2.loadListeners(),
      new Map([[8400, { server_port: 8400, password: "pw" }]]),
      "node 1's copy of the listener",
    );
    const salt = randomSalt();
    assertEquals(await n1.checkSalt(salt, 1000), "fresh");
    assertEquals(await n2.checkSalt(salt, 1000), "replay");
    await waitUntil(async () => (await n1.nodes()).length === 3, "three heartbeats", 2000);
  } finally {
    await Promise.all(fleets.map((f) => f.close()));
    await redis.stop();
  }
});

redisTest("a frozen Redis costs checkSalt its timeout, then the node reconnects", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using n1 = await startNode(redis, "node1");
  assertEquals(await n1.checkSalt(randomSalt(), 1000), "fresh");
  redis.pause();
  try {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      assertEquals(await n1.checkSalt(randomSalt(), 1000), "unavailable");
      times.push(performance.now() - start);
    }
    console.log(`fleet: checkSalt against a frozen Redis: ${times.map((t) => t.toFixed(0))} ms`);
    // Bounded by the command timeout (250 ms), with room for a loaded CI machine.
    assertOk(times.every((t) => t < 2000), `${times}`);
    // Three timeouts in a row: the connection is taken for dead.
    await waitUntil(() => n1.state === "down", "the node to give up the link", 10_000);
    const start = performance.now();
    assertEquals(await n1.checkSalt(randomSalt(), 1000), "unavailable");
    // Down: answered at once, without waiting for a timeout.
    assertOk(performance.now() - start < 200, `${performance.now() - start} ms`);
  } finally {
    redis.resume();
  }
  await waitUntil(() => n1.state === "up", "the node to reconnect", 5000);
  assertEquals(await n1.checkSalt(randomSalt(), 1000), "fresh");
});

redisTest("Fleet.connect() returns down when Redis is not there and connects later", async (
  _t,
  binary,
) => {
  const port = freePort();
  const fleet = await Fleet.connect({
    ...FAST,
    url: `redis://127.0.0.1:${port}`,
    node: "early",
    connectWaitMs: 100,
  });
  try {
    assertEquals(fleet.state, "down");
    assertEquals(await fleet.checkSalt(randomSalt(), 1000), "unavailable");
    fleet.addBytes("bob", 10);
    assertEquals(await fleet.usage("bob"), 10);
    assertEquals(await fleet.heartbeat(1), false);
    await using redis = await startRedis(binary, { port });
    await waitUntil(() => fleet.state === "up", "the first connection", 5000);
    assertEquals(fleet.reconnects, 0);
    assertEquals(await fleet.flush(), true);
    await using raw = await rawClient(redis);
    assertEquals(await raw.hget("ssdeno:usage:bob", "total"), "10");
    await fleet.close();
  } finally {
    await fleet.close();
  }
});

redisTest("heartbeats list three live nodes, then two after one stops", async (_t, binary) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2, n3] = nodes;
  assertEquals(await n1.heartbeat(5), true);
  assertEquals(await n2.heartbeat(7), true);
  assertEquals(await n3.heartbeat(9), true);
  const live = await n2.nodes();
  assertEquals(live.map((n) => [n.node, n.load]), [["node1", 5], ["node2", 7], ["node3", 9]]);
  await n3.close();
  assertEquals((await n1.nodes()).map((n) => n.node), ["node1", "node2"]);
  // A worker isolate's connection does not beat (its main isolate does).
  await using silent = await startNode(redis, "node1-worker", { heartbeatIntervalMs: 0 });
  assertEquals(await silent.heartbeat(3), false);
  assertEquals((await silent.nodes()).map((n) => n.node), ["node1", "node2"]);
  // A node that stops beating without a word disappears when its key expires.
  await using raw = await rawClient(redis);
  const beat = JSON.stringify({ boot: "x", load: 1, at: Date.now() });
  await raw.set("ssdeno:node:ghost", beat, "PX", 150);
  await raw.zadd("ssdeno:nodes", Date.now(), "ghost");
  assertEquals((await n1.nodes()).map((n) => n.node), ["ghost", "node1", "node2"]);
  await waitUntil(async () => (await n1.nodes()).length === 2, "the ghost to expire", 2000);
  // Periodic beats (200 ms apart here) go on with the load last given.
  const seenAt = async () => (await n1.nodes()).find((n) => n.node === "node2")?.seenAt ?? 0;
  const before = await seenAt();
  await waitUntil(async () => (await seenAt()) > before, "node 2's next beat", 2000);
  assertEquals((await n2.nodes()).map((n) => n.load), [5, 7]);
});

redisTest("admitClientIp() lets a user use at most max IPs across the fleet in a window", async (
  _t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using nodes = await startNodes(redis);
  const [n1, n2, n3] = nodes;
  assertEquals(await n1.admitClientIp("bob", "192.0.2.1", 2, 60_000), true);
  assertEquals(await n2.admitClientIp("bob", "192.0.2.2", 2, 60_000), true);
  // A third IP, on a third node: refused; the two known ones still get in anywhere.
  assertEquals(await n3.admitClientIp("bob", "192.0.2.3", 2, 60_000), false);
  assertEquals(await n3.admitClientIp("bob", "192.0.2.1", 2, 60_000), true);
  assertEquals(await n1.admitClientIp("bob", "192.0.2.2", 2, 60_000), true);
  // The refused IP took no place: it is still refused, not counted as a third.
  assertEquals(await n2.admitClientIp("bob", "192.0.2.3", 2, 60_000), false);
  assertEquals(await n3.admitClientIp("carol", "192.0.2.3", 1, 60_000), true);
  // A short window forgets IPs not seen within it: the place is free again. (1 s: the refusal
  // right after the first admission must land inside it even on a busy machine.)
  assertEquals(await n1.admitClientIp("dave", "192.0.2.1", 1, 1000), true);
  assertEquals(await n1.admitClientIp("dave", "192.0.2.2", 1, 1000), false);
  await waitUntil(
    async () => (await n2.admitClientIp("dave", "192.0.2.2", 1, 1000)) === true,
    "the first IP to leave the window",
    5000,
  );
});

redisTest("a Redis Cluster of three shards serves the fleet the same way", async (
  _t,
  binary,
) => {
  await using cluster = await startRedisCluster(binary, 3);
  const connect = (node: string) =>
    Fleet.connect({ ...FAST, url: cluster.urls, cluster: true, node, connectWaitMs: 5000 });
  const fleets = [await connect("node1"), await connect("node2"), await connect("node3")];
  try {
    const [n1, n2, n3] = fleets as [Fleet, Fleet, Fleet];
    assertEquals(fleets.map((f) => f.state), ["up", "up", "up"]);
    // Salts land on every shard (their keys hash to slots all over).
    const salts = Array.from({ length: 60 }, randomSalt);
    for (const salt of salts) assertEquals(await n1.checkSalt(salt, 10_000), "fresh");
    for (const salt of salts) assertEquals(await n2.checkSalt(salt, 10_000), "replay");
    const shards = await Promise.all(
      cluster.servers.map(async (server) => {
        await using raw = await rawClient(server);
        return Number((await raw.info("keyspace")).match(/keys=(\d+)/)?.[1] ?? 0);
      }),
    );
    assertOk(shards.every((keys) => keys > 0), `keys per shard: ${shards}`);

    const seen: ReadonlyMap<string, FleetUser>[] = [];
    using _watch = n3.watchUsers(8388, (users) => seen.push(users));
    await n2.putUser(8388, "alice", { password: "pw-a" });
    await waitUntil(() => seen.at(-1)?.has("alice") === true, "alice at node 3", 1000);

    n1.addBytes("bob", 1234);
    n3.addBytes("bob", 4321);
    await Promise.all([n1.flush(), n3.flush()]);
    assertEquals(await n2.usage("bob"), 5555);

    await Promise.all(fleets.map((f, i) => f.heartbeat(i)));
    assertEquals((await n2.nodes()).map((n) => n.node), ["node1", "node2", "node3"]);
    assertEquals(await n1.admitClientIp("bob", "192.0.2.1", 1, 60_000), true);
    assertEquals(await n2.admitClientIp("bob", "192.0.2.2", 1, 60_000), false);
  } finally {
    await Promise.all(fleets.map((f) => f.close()));
  }
});

redisTest("rediss:// with a password and a private CA connects; without the CA it does not", async (
  _t,
  binary,
) => {
  const openssl = findOpenssl();
  if (openssl === undefined) {
    if (isCi()) throw new Error("openssl not found: install with apt-get install -y openssl");
    console.log("skipped: openssl not found (it makes the test CA)");
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-tls-" });
  try {
    const tls = await makeTlsFiles(openssl, dir);
    await using redis = await startRedis(binary, { tls, args: ["--requirepass", "s3cret"] });
    const url = redis.url.replace("rediss://", "rediss://:s3cret@");
    const ca = await Deno.readTextFile(tls.caFile);
    await using fleet = await Fleet.connect({ ...FAST, url, node: "tls", tls: { ca } });
    assertEquals(fleet.state, "up");
    const salt = randomSalt();
    assertEquals(await fleet.checkSalt(salt, 1000), "fresh");
    assertEquals(await fleet.checkSalt(salt, 1000), "replay");
    for (
      const [what, options] of [
        ["no CA", { url }],
        ["a wrong password", { url: url.replace("s3cret", "nope"), tls: { ca } }],
      ] as const
    ) {
      await using refused = await Fleet.connect({
        ...FAST,
        ...options,
        node: "refused",
        connectWaitMs: 300,
      });
      assertEquals(refused.state, "down", what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

redisTest("measured: checkSalt latency and Redis commands per connection", async (
  t,
  binary,
) => {
  await using redis = await startRedis(binary);
  await using raw = await rawClient(redis);
  const commandsProcessed = async () =>
    Number((await raw.info("stats")).match(/total_commands_processed:(\d+)/)![1]);
  for (const autoPipelining of [false, true]) {
    await t.step(`auto-pipelining ${autoPipelining ? "on" : "off"}`, async () => {
      await using n1 = await startNode(redis, "node1", {
        autoPipelining,
        flushIntervalMs: 2000,
        heartbeatIntervalMs: 5000,
        saltTimeoutMs: 1000,
      });
      const sequential: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const start = performance.now();
        assertEquals(await n1.checkSalt(randomSalt(), 60_000), "fresh");
        sequential.push(performance.now() - start);
      }
      sequential.sort((a, b) => a - b);
      const burst: number[] = [];
      for (let round = 0; round < 30; round++) {
        const start = performance.now();
        await Promise.all(Array.from({ length: 100 }, () => n1.checkSalt(randomSalt(), 60_000)));
        burst.push((performance.now() - start) / 100);
      }
      burst.sort((a, b) => a - b);
      console.log(
        `fleet: checkSalt one at a time: p50 ${percentile(sequential, 0.5).toFixed(3)} ms, ` +
          `p99 ${percentile(sequential, 0.99).toFixed(3)} ms; ` +
          `100 at once: p50 ${percentile(burst, 0.5).toFixed(4)} ms per check`,
      );

      // One "connection": a salt check and its bytes (users as in a small multi-user port).
      const before = await commandsProcessed();
      const connections = 2000;
      for (let i = 0; i < connections; i++) {
        await n1.checkSalt(randomSalt(), 60_000);
        n1.addBytes(`user${i % 20}`, 1500);
      }
      await n1.flush();
      const commands = (await commandsProcessed()) - before - 1;
      console.log(
        `fleet: ${(commands / connections).toFixed(3)} Redis commands per connection ` +
          `(${commands} for ${connections} connections of 20 users)`,
      );
      assertOk(commands / connections < 1.1, `${commands} commands`);
    });
  }
});
