/**
 * `max_client_ips`: a user limited to one client IP is served from the first address and
 * refused from a second (`ERR_AUTH`) until the first leaves the window; a user without a limit is
 * served from both. The clients are shadowsocks-rust's sslocal with `outbound_bind_addr`, the
 * only way on loopback to reach the server from two source addresses; the window logic itself is
 * tested with a fake clock in tests/service/client_ips_test.ts.
 */
import assert from "node:assert/strict";
import type { ServerConfig } from "../../config/types.ts";
import { startServer } from "../../server.ts";
import { ClientIpWindow, localGate } from "../../service/client_ips.ts";
import { freePort, type PeerProcess, peerTest, waitForTcpPort } from "../interop/_peers.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";
import { startRustLocal } from "../interop/_rust.ts";
import { randomPsk } from "./_udp_harness.ts";
import { echoesThrough, serverConfig, startEchoServer, waitFor } from "./_harness.ts";

const METHOD = "2022-blake3-aes-128-gcm";
/** Long enough that the checks made within it never race it on a busy machine. */
const WINDOW_MS = 3000;

peerTest({
  name: "max_client_ips: a second address is refused until the first leaves the window",
  peers: ["sslocal"],
  async fn() {
    const echo = startEchoServer();
    const ipsk = randomPsk(16);
    const keys = { alice: randomPsk(16), bob: randomPsk(16) };
    const window = new ClientIpWindow(WINDOW_MS);
    const server = await startServer(
      serverConfig(METHOD, {
        address: "0.0.0.0",
        password: ipsk,
        mode: "tcp_only",
        users: [
          { name: "alice", password: keys.alice, maxClientIps: 1 },
          { name: "bob", password: keys.bob },
        ],
      } as Partial<ServerConfig>),
      { graceMs: 0, clientIps: localGate(window) },
    );
    const locals: PeerProcess[] = [];
    try {
      const local = async (user: keyof typeof keys, from: string) => {
        const peer = await startRustLocal(server.addr.port, {
          method: METHOD,
          password: `${ipsk}:${keys[user]}`,
          udp: false,
          outboundBindAddr: from,
        });
        locals.push(peer);
        return peer.port;
      };
      /** Whether a session through `port` echoes (false: the server closed it). */
      const served = (port: number) => echoesThrough(port, echo.port);
      const aliceFromA = await local("alice", "127.0.0.1");
      const aliceFromB = await local("alice", "127.0.0.2");
      const bobFromB = await local("bob", "127.0.0.2");

      assert.equal(await served(aliceFromA), true);
      assert.equal(await served(aliceFromB), false, "a second address for alice");
      await waitFor(() => server.stats.statuses.ERR_AUTH === 1, 5000, "ERR_AUTH");
      assert.equal(window.count("alice"), 1, "the refused address took no place");
      assert.equal(await served(bobFromB), true, "bob has no limit");
      assert.equal(await served(aliceFromA), true, "the first address is still hers");

      // Once the first address has been quiet for the window, the second may take its place.
      const quietSince = Date.now();
      await waitFor(() => Date.now() - quietSince > WINDOW_MS, WINDOW_MS * 3, "the window");
      assert.equal(await served(aliceFromB), true);
      assert.equal(await served(aliceFromA), false, "now the first one is too many");
    } finally {
      for (const peer of locals) await peer.stop();
      await server.close();
      await echo.close();
    }
  },
});

peerTest({
  name: "max_client_ips with --workers 2: one window for every isolate",
  peers: ["sslocal"],
  async fn() {
    const echo = startEchoServer();
    const ipsk = randomPsk(16);
    const key = randomPsk(16);
    const dir = await Deno.makeTempDir({ prefix: "ssdeno-client-ips-" });
    const port = freePort();
    const metricsPort = freePort();
    await Deno.writeTextFile(
      `${dir}/server.json`,
      JSON.stringify({
        server: "0.0.0.0",
        server_port: port,
        method: METHOD,
        password: ipsk,
        mode: "tcp_only",
        users: [{ name: "alice", password: key, max_client_ips: 1 }],
      }),
    );
    await using child = spawnSsdeno([
      ...["server", "-c", `${dir}/server.json`, "--workers", "2", "--allow-private-targets"],
      ...["--metrics", `127.0.0.1:${metricsPort}`],
    ]);
    const locals: PeerProcess[] = [];
    try {
      await waitForTcpPort(port, { exited: child.status });
      await waitForTcpPort(metricsPort, { exited: child.status });
      await waitFor(() => child.log().includes("worker 1: server listening"), 15_000, "worker");
      const from = async (address: string) => {
        const peer = await startRustLocal(port, {
          method: METHOD,
          password: `${ipsk}:${key}`,
          udp: false,
          outboundBindAddr: address,
        });
        locals.push(peer);
        return peer.port;
      };
      const served = (socksPort: number) => echoesThrough(socksPort, echo.port);
      const a = await from("127.0.0.1");
      const b = await from("127.0.0.2");
      // One session from the first address, wherever it lands; then the second address, whose
      // sessions land on both isolates: each must know the first address took the place.
      assert.equal(await served(a), true);
      const sessions = 12;
      const results = { a: 0, b: 0 };
      for (let i = 0; i < sessions; i++) if (await served(b)) results.b++;
      for (let i = 0; i < sessions; i++) if (await served(a)) results.a++;
      assert.deepEqual(results, { a: sessions, b: 0 });
      // Both isolates took sessions: the worker asked the main isolate's window.
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const onWorker = Number(
        text.match(/ssdeno_worker_connections_total\{worker="1"\} (\d+)/)?.[1] ?? 0,
      );
      assert.ok(onWorker > 0, `no session landed on the worker:\n${text}`);
    } finally {
      for (const peer of locals) await peer.stop();
      await echo.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
