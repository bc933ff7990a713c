/**
 * Fleet mode (issue 17) as operators run it: three `ssdeno server` processes with the same key
 * and the same `fleet` (one redis-server). A first flight recorded on its way to node 1 is
 * refused (`ERR_REPLAY`) when replayed to nodes 2 and 3, whose local replay memory never saw
 * it, for AEAD-2017 and 2022; a fresh session to node 2 works; and with Redis gone the nodes log
 * that the fleet is down and keep serving (a `strict` one refuses sessions); with `--workers 2`
 * the worker isolate checks salts through the main isolate's fleet.
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { writeAll } from "../../relay/io.ts";
import type { RunningService } from "../../relay/service.ts";
import { freePort, isCi, waitForTcpPort } from "../interop/_peers.ts";
import {
  findOpenssl,
  makeTlsFiles,
  redisTest,
  startRedis,
  startRedisCluster,
} from "../service/_redis.ts";
import { spawnSsdeno, type SsdenoProcess } from "./_ssdeno_process.ts";
import { randomPsk } from "./_udp_harness.ts";
import {
  localConfig,
  localhostTarget,
  metricSample,
  recordingForwarder,
  socksConnect,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const METHOD_2022 = "2022-blake3-aes-128-gcm";
/** The bound of every wait on a process, a port or a counter. */
const WAIT_MS = 15_000;

const sample = metricSample;

/** Sessions of `node` that ended with `status`, from its /metrics. */
async function closedWith(node: Node, status: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`);
  const text = await response.text();
  return sample(text, "shadowsocks_tcp_connections_closed", `{status="${status}"}`);
}

/** Waits (bounded) until `node` counted `count` sessions ended with `status`. */
async function waitForClosed(node: Node, status: string, count: number): Promise<void> {
  const until = Date.now() + WAIT_MS;
  let seen = await closedWith(node, status);
  while (seen !== count) {
    if (Date.now() > until) {
      throw new Error(
        `node ${node.name}: ${seen} sessions ended ${status}, expected ${count}; log:\n` +
          node.child.log(),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    seen = await closedWith(node, status);
  }
}

interface Node {
  name: string;
  port: number;
  metricsPort: number;
  child: SsdenoProcess;
}

/** Starts `ssdeno server` as fleet node `name`, and waits until it serves and joined Redis. */
async function startNode(
  dir: string,
  name: string,
  method: string,
  password: string,
  fleet: Record<string, unknown>,
  workers = 1,
): Promise<Node> {
  const port = freePort();
  const metricsPort = freePort();
  const configPath = `${dir}/${name}.json`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      server: "127.0.0.1",
      server_port: port,
      password,
      method,
      fleet: { ...fleet, node: name },
    }),
  );
  const child = spawnSsdeno([
    ...["server", "-c", configPath, "--workers", `${workers}`, "--allow-private-targets"],
    ...["--handshake-timeout", "2", "--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  const node = { name, port, metricsPort, child };
  try {
    await waitForTcpPort(port, { exited: child.status });
    await waitForTcpPort(metricsPort, { exited: child.status });
    await waitFor(() => child.log().includes("fleet: connected"), WAIT_MS, `${name} in the fleet`);
    if (workers > 1) {
      await waitFor(
        () => child.log().includes(`worker ${workers - 1}: server listening`),
        WAIT_MS,
        `${name}'s workers`,
      );
    }
  } catch (error) {
    await child.close();
    throw new Error(`node ${name} did not start: ${child.log()}`, { cause: error });
  }
  return node;
}

/** Opens a session through `local` to the echo target and checks a byte comes back. */
async function echoOnce(local: RunningService, echoPort: number): Promise<void> {
  const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echoPort));
  try {
    assert.equal(reply, 0);
    await writeAll(conn, Uint8Array.of(42));
    const got = new Uint8Array(1);
    assert.equal(await conn.read(got), 1);
    assert.equal(got[0], 42);
  } finally {
    conn.close();
  }
}

/** Sends `flight` to `node` on a new connection and closes it, as a replaying prober does. */
async function replay(node: Node, flight: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: node.port });
  try {
    await writeAll(conn, flight);
  } finally {
    conn.close();
  }
}

redisTest(
  "fleet: a first flight replayed to other nodes is refused; Redis down, nodes go on",
  async (t, binary) => {
    await using redis = await startRedis(binary);
    const echo = startEchoServer();
    const dir = await Deno.makeTempDir({ prefix: "ssdeno-fleet-" });
    try {
      for (const method of ["aes-128-gcm", METHOD_2022]) {
        await t.step(method, async () => {
          const password = method === METHOD_2022 ? randomPsk(16) : "e2e-fleet-password";
          const fleet = { redis_url: redis.url, prefix: `e2e-${method}` };
          const nodes: Node[] = [];
          const closers: (() => Promise<void>)[] = [];
          try {
            for (const name of ["n1", "n2", "n3"]) {
              nodes.push(await startNode(dir, name, method, password, fleet));
            }
            const [n1, n2, n3] = nodes as [Node, Node, Node];
            // The original session, to node 1 through the recording forwarder.
            const forwarder = recordingForwarder(n1.port);
            closers.push(() => forwarder.close());
            const local = await startLocal(
              localConfig(method, forwarder.port, { password }),
              { graceMs: 0 },
            );
            closers.push(() => local.close());
            await echoOnce(local, echo.port);
            await waitForClosed(n1, "OK", 1);
            const [flight] = forwarder.flights() as [Uint8Array];
            assert.ok(flight.length > 32, `${flight.length} bytes recorded`);

            // Nodes 2 and 3 never saw the salt: only the fleet can tell them it is a replay. They
            // may connect to the target while Redis answers, but never send it a byte.
            const targetBytes = echo.received;
            for (const node of [n2, n3]) {
              await replay(node, flight);
              await waitForClosed(node, "ERR_REPLAY", 1);
              assert.equal(await closedWith(node, "OK"), 0);
            }
            assert.equal(echo.received, targetBytes, "the replay's payload reached the target");
            // And node 1 still refuses it, from its local memory.
            await replay(n1, flight);
            await waitForClosed(n1, "ERR_REPLAY", 1);

            // A fresh session to node 2 works.
            const direct = await startLocal(localConfig(method, n2.port, { password }), {
              graceMs: 0,
            });
            closers.push(() => direct.close());
            await echoOnce(direct, echo.port);
            await waitForClosed(n2, "OK", 1);
          } finally {
            for (const close of closers.reverse()) await close();
            for (const node of nodes) await node.child.close();
          }
        });
      }

      await t.step(
        "--workers 2: a worker isolate checks through the main isolate's fleet",
        async () => {
          const method = "aes-128-gcm";
          const password = "e2e-fleet-password";
          const fleet = { redis_url: redis.url, prefix: "workers" };
          const nodes: Node[] = [];
          const closers: (() => Promise<void>)[] = [];
          try {
            nodes.push(await startNode(dir, "n1", method, password, fleet));
            nodes.push(await startNode(dir, "n2", method, password, fleet, 2));
            const [n1, n2] = nodes as [Node, Node];
            const forwarder = recordingForwarder(n1.port);
            closers.push(() => forwarder.close());
            const local = await startLocal(localConfig(method, forwarder.port, { password }), {
              graceMs: 0,
            });
            closers.push(() => local.close());
            const sessions = 16;
            for (let i = 0; i < sessions; i++) await echoOnce(local, echo.port);
            await waitForClosed(n1, "OK", sessions);
            const flights = forwarder.flights();
            assert.equal(flights.length, sessions);
            // Each flight is new to node 2's (shared) local memory: whichever isolate it lands on,
            // only the fleet refuses it. Replayed until one has landed on the worker.
            const onWorker = async () => {
              const text = await (await fetch(`http://127.0.0.1:${n2.metricsPort}/metrics`)).text();
              return sample(text, "ssdeno_worker_connections_total", '{worker="1"}');
            };
            let replayed = 0;
            while ((await onWorker()) === 0) {
              assert.ok(replayed < sessions, `${sessions} replays all landed on the main isolate`);
              await replay(n2, flights[replayed++]!);
              await waitForClosed(n2, "ERR_REPLAY", replayed);
            }
            assert.equal(await closedWith(n2, "OK"), 0);
          } finally {
            for (const close of closers.reverse()) await close();
            for (const node of nodes) await node.child.close();
          }
        },
      );

      await t.step(
        "strict, Redis frozen: the target connection made meanwhile closes before the drain",
        async () => {
          const method = "aes-128-gcm";
          const password = "e2e-fleet-password";
          const strict = await startNode(dir, "frozen", method, password, {
            redis_url: redis.url,
            prefix: "frozen",
            strict: true,
          });
          const local = await startLocal(localConfig(method, strict.port, { password }), {
            graceMs: 0,
          });
          try {
            const accepted = echo.accepted;
            const received = echo.received;
            // Redis stops answering: each salt check waits its 250 ms, then "unavailable", which
            // a strict node refuses; the target's connect has long finished by then.
            redis.pause();
            const { conn } = await socksConnect(local.addr.port, localhostTarget(echo.port));
            try {
              await writeAll(conn, Uint8Array.of(42));
              await waitFor(() => echo.accepted > accepted, WAIT_MS, "the target's connection");
              const opened = performance.now();
              // The client holds on (a prober would): the drain lasts until the handshake
              // deadline (2 s); the target's connection must close at the verdict, not then.
              await waitFor(() => echo.open === 0, WAIT_MS, "the target connection to close");
              const heldMs = performance.now() - opened;
              assert.ok(heldMs < 1500, `target connection held ${heldMs.toFixed(0)} ms`);
              assert.equal(
                echo.received,
                received,
                "the refused session's byte reached the target",
              );
            } finally {
              conn.close();
              redis.resume();
            }
            await waitForClosed(strict, "ERR_INTERNAL", 1);
          } finally {
            await local.close();
            await strict.child.close();
          }
        },
      );

      await t.step("Redis down: nodes log it and keep serving; a strict one refuses", async () => {
        const method = "aes-128-gcm";
        const password = "e2e-fleet-password";
        const nodes: Node[] = [];
        const locals: RunningService[] = [];
        try {
          for (const name of ["n1", "n2", "strict"]) {
            nodes.push(
              await startNode(dir, name, method, password, {
                redis_url: redis.url,
                prefix: "down",
                ...(name === "strict" ? { strict: true } : {}),
              }),
            );
          }
          const [n1, n2, strict] = nodes as [Node, Node, Node];
          await redis.kill();
          await waitFor(
            () => strict.child.log().includes("fleet: Redis down"),
            WAIT_MS,
            "the strict node to log that Redis is down",
          );
          const refused = await startLocal(localConfig(method, strict.port, { password }), {
            graceMs: 0,
          });
          locals.push(refused);
          const { conn } = await socksConnect(refused.addr.port, localhostTarget(echo.port));
          try {
            await writeAll(conn, Uint8Array.of(42));
            await waitForClosed(strict, "ERR_INTERNAL", 1);
          } finally {
            conn.close();
          }
          assert.match(strict.child.log(), /fleet unavailable/);
          assert.equal(await closedWith(strict, "OK"), 0);
          for (const node of [n1, n2]) {
            await waitFor(
              () => node.child.log().includes("fleet: Redis down"),
              WAIT_MS,
              `${node.name} to log that Redis is down`,
            );
            const local = await startLocal(localConfig(method, node.port, { password }), {
              graceMs: 0,
            });
            locals.push(local);
            await echoOnce(local, echo.port);
            await echoOnce(local, echo.port);
            await waitForClosed(node, "OK", 2);
            assert.equal(await closedWith(node, "ERR_INTERNAL"), 0);
          }
        } finally {
          for (const local of locals) await local.close();
          for (const node of nodes) await node.child.close();
        }
      });
    } finally {
      await echo.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** A session to `first` recorded on its way, then replayed to `second`: refused there. */
async function assertReplayRefused(first: Node, second: Node, method: string, password: string) {
  const echo = startEchoServer();
  const forwarder = recordingForwarder(first.port);
  const local = await startLocal(localConfig(method, forwarder.port, { password }), {
    graceMs: 0,
  });
  try {
    await echoOnce(local, echo.port);
    await waitForClosed(first, "OK", 1);
    const [flight] = forwarder.flights() as [Uint8Array];
    await replay(second, flight);
    await waitForClosed(second, "ERR_REPLAY", 1);
    assert.equal(await closedWith(second, "OK"), 0);
  } finally {
    await local.close();
    await forwarder.close();
    await echo.close();
  }
}

redisTest("fleet through a Redis Cluster, and through rediss:// with tls_ca", async (t, binary) => {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-fleet-cluster-" });
  const method = "aes-256-gcm";
  const password = "e2e-fleet-cluster";
  try {
    await t.step("cluster: true with the seed nodes", async () => {
      await using cluster = await startRedisCluster(binary, 3);
      const fleet = { redis_url: cluster.urls, cluster: true, prefix: "cl" };
      const nodes: Node[] = [];
      try {
        nodes.push(await startNode(dir, "c1", method, password, fleet));
        nodes.push(await startNode(dir, "c2", method, password, fleet));
        await assertReplayRefused(nodes[0]!, nodes[1]!, method, password);
      } finally {
        for (const node of nodes) await node.child.close();
      }
    });
    await t.step("rediss:// with a password and tls_ca", async () => {
      const openssl = findOpenssl();
      if (openssl === undefined) {
        if (isCi()) throw new Error("openssl not found: install with apt-get install -y openssl");
        console.log("skipped: openssl not found (it makes the test CA)");
        return;
      }
      const tls = await makeTlsFiles(openssl, dir);
      await using redis = await startRedis(binary, { tls, args: ["--requirepass", "s3cret"] });
      const fleet = {
        redis_url: redis.url.replace("rediss://", "rediss://:s3cret@"),
        tls_ca: tls.caFile,
        prefix: "tls",
      };
      const nodes: Node[] = [];
      try {
        nodes.push(await startNode(dir, "t1", method, password, fleet));
        nodes.push(await startNode(dir, "t2", method, password, fleet));
        await assertReplayRefused(nodes[0]!, nodes[1]!, method, password);
        // The password never shows in the log.
        for (const node of nodes) assert.ok(!node.child.log().includes("s3cret"));
      } finally {
        for (const node of nodes) await node.child.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
