/**
 * SIP003 plugins against shadowsocks-libev with the same plugin, both directions (issue 12):
 * simple-obfs (`obfs=http`, `obfs=tls`) and v2ray-plugin (websocket). The ssdeno side starts its
 * plugin itself (service/plugin.ts); traffic is checked by SHA-256 through curl. A missing
 * plugin binary fails the start with one clear line instead of serving plain Shadowsocks.
 */
import assert from "node:assert/strict";
import type { LocalConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { silentLogger } from "../../relay/log.ts";
import { startListener } from "../../server.ts";
import {
  curlViaSocks,
  deterministicBytes,
  sha256Hex,
  startHttpFixture,
  waitUntil,
} from "../_fixtures.ts";
import { localConfig, serverConfig, startEchoServer } from "../e2e/_harness.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { startTunnel } from "../../tunnel.ts";
import { freePort, peerTest, startSsLocal, startSsServer, waitForTcpPort } from "./_peers.ts";

const METHOD = "chacha20-ietf-poly1305";
const PASSWORD = "plugin-interop-password";

const PLUGINS = [
  {
    what: "simple-obfs http",
    server: "obfs-server",
    local: "obfs-local",
    serverOpts: "obfs=http",
    localOpts: "obfs=http;obfs-host=www.example.com",
    peers: ["obfs-server", "obfs-local"],
  },
  {
    what: "simple-obfs tls",
    server: "obfs-server",
    local: "obfs-local",
    serverOpts: "obfs=tls",
    localOpts: "obfs=tls;obfs-host=www.example.com",
    peers: ["obfs-server", "obfs-local"],
  },
  {
    what: "v2ray-plugin websocket",
    server: "ss-v2ray-plugin",
    local: "ss-v2ray-plugin",
    serverOpts: "server;path=/ws",
    localOpts: "path=/ws;host=www.example.com",
    peers: ["ss-v2ray-plugin"],
  },
] as const;

/**
 * Downloads `url` (the 200 000-byte blob) through libev's ss-local once its plugin is up, and
 * checks it. ss-local listens at once and
 * starts its plugin beside it; a session in between finds no plugin and is closed empty (curl 52
 * or 56). Retried on those only, for at most 10 s; a session that did not reach our server does
 * not count in its statuses.
 */
async function downloadWhenPluginUp(socksPort: number, url: string) {
  const until = performance.now() + 10_000;
  for (;;) {
    const result = await curlViaSocks(socksPort, url, { maxTimeSeconds: 15 });
    if ((result.code === 52 || result.code === 56) && performance.now() < until) continue;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await sha256Hex(result.stdout), await sha256Hex(deterministicBytes(200_000)));
    return;
  }
}

for (const plugin of PLUGINS) {
  peerTest({
    name: `libev ss-local with ${plugin.what} reaches the ssdeno server with the same plugin`,
    peers: ["ss-local", "curl", ...plugin.peers],
    async fn() {
      await using http = startHttpFixture();
      const port = freePort();
      const controller = new AbortController();
      const server = await startListener(
        serverConfig(METHOD, {
          password: PASSWORD,
          port,
          plugin: { name: plugin.server, options: plugin.serverOpts },
        }),
        { graceMs: 0, logger: silentLogger, signal: controller.signal },
      );
      try {
        await waitForTcpPort(port);
        await using local = await startSsLocal(port, {
          method: METHOD,
          password: PASSWORD,
          plugin: plugin.local,
          pluginOpts: plugin.localOpts,
        });
        await downloadWhenPluginUp(local.port, http.url("/blob?size=200000"));
        // The session reached our server through the plugin, and ended well there.
        await waitUntil(() => server.stats.statuses.OK === 1, {
          message: () => JSON.stringify(server.stats.statuses),
        });
      } finally {
        controller.abort();
        await server.close();
      }
    },
  });

  peerTest({
    name: `the ssdeno local with ${plugin.what} reaches libev ss-server with the same plugin`,
    peers: ["ss-server", "curl", ...plugin.peers],
    async fn() {
      await using http = startHttpFixture();
      await using server = await startSsServer({
        method: METHOD,
        password: PASSWORD,
        plugin: plugin.server,
        pluginOpts: plugin.serverOpts,
      });
      const config: LocalConfig = {
        ...localConfig(METHOD, server.port, { password: PASSWORD }),
        plugin: { name: plugin.local, options: plugin.localOpts },
      };
      const local = await startLocal(config, { graceMs: 0 });
      try {
        // The plugin starts beside the local: the first attempts may find it not yet listening.
        let result;
        for (let attempt = 0; attempt < 50; attempt++) {
          result = await curlViaSocks(local.addr.port, http.url("/blob?size=200000"), {
            maxTimeSeconds: 15,
          });
          if (result.code === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(result!.code, 0, `${result!.stderr}\n${server.output()}`);
        assert.deepEqual(result!.stdout, deterministicBytes(200_000));
      } finally {
        await local.close();
      }
    },
  });
}

Deno.test("a plugin that is not installed fails the start; nothing is left listening", async () => {
  const port = freePort();
  await assert.rejects(
    startListener(
      serverConfig(METHOD, { password: PASSWORD, port, plugin: { name: "no-such-plugin-xyz" } }),
      { graceMs: 0, logger: silentLogger },
    ),
    /Plugin "no-such-plugin-xyz" not found on PATH/,
  );
  await assert.rejects(
    startLocal({
      ...localConfig(METHOD, 1, { password: PASSWORD }),
      plugin: { name: "no-such-plugin-xyz" },
    }),
    /not found on PATH/,
  );
  // The port is free again: the server half started first was closed.
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  listener.close();
});

peerTest({
  name: "the ssdeno tunnel with simple-obfs reaches libev ss-server with the same plugin",
  peers: ["ss-server", "obfs-server", "obfs-local"],
  async fn() {
    const echo = startEchoServer();
    await using server = await startSsServer({
      method: METHOD,
      password: PASSWORD,
      plugin: "obfs-server",
      pluginOpts: "obfs=http",
    });
    const tunnel = await startTunnel({
      ...localConfig(METHOD, server.port, { password: PASSWORD }),
      tunnelHost: "127.0.0.1",
      tunnelPort: echo.port,
      plugin: { name: "obfs-local", options: "obfs=http;obfs-host=www.example.com" },
    }, { graceMs: 0 });
    try {
      let done = false;
      for (let attempt = 0; attempt < 50 && !done; attempt++) {
        // No half-close here: simple-obfs ends both directions when one ends.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.addr.port });
        try {
          const sent = deterministicBytes(50_000, attempt + 1);
          await writeAll(conn, sent);
          const back = await readExact(conn, new Uint8Array(sent.length));
          done = back !== null && (await sha256Hex(back)) === (await sha256Hex(sent));
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100)); // the plugin is starting
        } finally {
          conn.close();
        }
      }
      assert.ok(done, `no echo through the tunnel's plugin\n${server.output()}`);
    } finally {
      await tunnel.close();
      await echo.close();
    }
  },
});
