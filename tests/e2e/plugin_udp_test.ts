/**
 * SIP003u: with `plugin_mode: tcp_and_udp` UDP goes through the plugin on both ends (a test
 * plugin that carries TCP and UDP unchanged and reports each datagram); without it, UDP goes
 * straight to the server's port, as SIP003 says.
 */
import assert from "node:assert/strict";
import type { PluginConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { createLogger } from "../../relay/log.ts";
import { startListener } from "../../server.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { localConfig, serverConfig, waitFor } from "./_harness.ts";
import { datagramBytes, SocksUdpClient, UdpEcho } from "./_udp_harness.ts";

const PLUGIN_SOURCE = new URL("./_sip003u_plugin.ts", import.meta.url).pathname;
const METHOD = "chacha20-ietf-poly1305";

/** An executable that runs the test plugin (plugins are programs found by path). */
async function pluginScript(dir: string): Promise<string> {
  const path = `${dir}/sip003u-test-plugin`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A "${PLUGIN_SOURCE}"\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

for (const udpThroughPlugin of [true, false]) {
  Deno.test(
    `UDP ${udpThroughPlugin ? "goes through" : "bypasses"} the plugin with plugin_mode ${
      udpThroughPlugin ? "tcp_and_udp" : "tcp_only"
    }; TCP always goes through it`,
    async () => {
      const dir = await Deno.makeTempDir();
      await using http = startHttpFixture();
      const echo = new UdpEcho();
      const lines: string[] = [];
      const logger = createLogger("info", (line) => lines.push(line));
      const name = await pluginScript(dir);
      const mode = udpThroughPlugin ? { mode: "tcp_and_udp" as const } : {};
      const udpOption = udpThroughPlugin ? ";udp" : "";
      const serverPlugin: PluginConfig = { name, options: `server${udpOption}`, ...mode };
      const listen = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listen.addr as Deno.NetAddr).port;
      listen.close();
      const server = await startListener(
        serverConfig(METHOD, { mode: "tcp_and_udp", port, plugin: serverPlugin }),
        { graceMs: 0, logger },
      );
      const local = await startLocal(
        localConfig(METHOD, port, {
          mode: "tcp_and_udp",
          servers: [{
            server: "127.0.0.1",
            serverPort: port,
            method: METHOD,
            password: "e2e-password",
            plugin: { name, options: `client${udpOption}`, ...mode },
          }],
        }),
        { graceMs: 0, logger },
      );
      try {
        // TCP through both plugins (retried while the plugins start listening).
        let result = await curlViaSocks(local.addr.port, http.url("/blob?size=1000"));
        for (let i = 0; i < 50 && result.code !== 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          result = await curlViaSocks(local.addr.port, http.url("/blob?size=1000"));
        }
        assert.equal(result.code, 0, `${result.stderr}\n${lines.join("\n")}`);

        const client = await SocksUdpClient.open(local.addr.port);
        try {
          const payload = datagramBytes(300, 7);
          await client.send({ type: "ipv4", host: "127.0.0.1", port: echo.port }, payload);
          const reply = await client.next(5000).catch((error) => {
            throw new Error(`${error.message}\n${lines.join("\n")}`);
          });
          assert.deepEqual(reply.payload, payload);
        } finally {
          await client.close();
        }
        const carried = () =>
          lines.filter((line) => /sip003u-test-plugin.*: udp \d+ bytes/.test(line));
        if (udpThroughPlugin) {
          // The local's plugin carried the request, the server's plugin the request and the reply.
          await waitFor(() => carried().length >= 2, 5000, `UDP lines from the plugins`);
        } else {
          assert.equal(carried().length, 0, lines.join("\n"));
        }
        assert.equal(server.udpStats?.statuses.OK, 1);
      } finally {
        await local.close();
        await server.close();
        await echo.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
