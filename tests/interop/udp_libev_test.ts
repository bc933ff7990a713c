/**
 * UDP interop with shadowsocks-libev, both directions, for every AEAD method:
 *
 * ```
 *   UDP client ─▶ libev ss-tunnel -u ══▶ ssdeno server ─▶ UDP echo
 *   SOCKS5 UDP client ─▶ libev ss-local -u ══▶ ssdeno server ─▶ UDP echo
 *   SOCKS5 UDP client ─▶ ssdeno local ══▶ libev ss-server -u ─▶ UDP echo
 *   UDP client ─▶ ssdeno tunnel ══▶ libev ss-server -u ─▶ UDP echo
 * ```
 *
 * Every datagram is checked byte for byte, from 1 to 2000 bytes: libev 3.3.5 sizes its UDP
 * buffers for a 1397-byte MTU (twice that) and drops bigger packets as "suspicious", so large
 * datagrams are left to the ssdeno-only tests.
 * @module
 */
import assert from "node:assert/strict";
import type { LocalConfig, ServerConfig, TunnelConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { startTunnel } from "../../tunnel.ts";
import { waitUntil } from "../_fixtures.ts";
import { UdpEcho } from "../e2e/_udp_harness.ts";
import {
  localConfig as harnessLocalConfig,
  serverConfig as harnessServerConfig,
} from "../e2e/_harness.ts";
import { checkSocksUdp, checkTunnel } from "./_checks.ts";
import { peerTest, startSsLocal, startSsServer, startSsTunnel } from "./_peers.ts";

const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;
const PASSWORD = "udp-interop-password";
const SIZES = [1, 64, 512, 1400, 2000];

/** The e2e harness's configs with UDP on, this file's password and a smaller NAT table. */
const OVERRIDES = {
  password: PASSWORD,
  mode: "tcp_and_udp",
  udpMaxAssociations: 256,
} as const;

function serverConfig(method: string): ServerConfig {
  return harnessServerConfig(method, OVERRIDES);
}

function localConfig(method: string, serverPort: number): LocalConfig {
  return harnessLocalConfig(method, serverPort, OVERRIDES);
}

for (const method of METHODS) {
  peerTest({
    name: `libev ss-tunnel -u and ss-local -u carry UDP through ssdeno server with ${method}`,
    peers: ["ss-tunnel", "ss-local"],
    async fn() {
      const echo = new UdpEcho();
      const server = await startServer(serverConfig(method), { graceMs: 0 });
      try {
        const options = { method, password: PASSWORD, udp: true };
        {
          await using tunnel = await startSsTunnel(server.addr.port, {
            ...options,
            target: `127.0.0.1:${echo.port}`,
          });
          await checkTunnel(tunnel.port, SIZES, `ss-tunnel → ssdeno (${tunnel.output()})`);
        }
        {
          await using local = await startSsLocal(server.addr.port, options);
          await checkSocksUdp(
            local.port,
            echo.port,
            SIZES,
            `ss-local → ssdeno (${local.output()})`,
          );
        }
        const stats = server.udpStats!;
        assert.equal(stats.statuses.ERR_CIPHER, 0);
        assert.equal(stats.statuses.ERR_READ_ADDRESS, 0);
        assert.ok(stats.statuses.OK >= 2 * SIZES.length);
        await waitUntil(() => stats.repliesRelayed >= 2 * SIZES.length);
      } finally {
        await server.close();
        await echo.close();
      }
    },
  });

  peerTest({
    name: `ssdeno local and tunnel carry UDP through libev ss-server -u with ${method}`,
    peers: ["ss-server"],
    async fn() {
      const echo = new UdpEcho();
      await using peer = await startSsServer({ method, password: PASSWORD, udp: true });
      const local = await startLocal(localConfig(method, peer.port), { graceMs: 0 });
      const tunnelConfig: TunnelConfig = {
        ...localConfig(method, peer.port),
        mode: "udp_only",
        tunnelHost: "127.0.0.1",
        tunnelPort: echo.port,
      };
      const tunnel = await startTunnel(tunnelConfig, { graceMs: 0 });
      try {
        await checkSocksUdp(
          local.addr.port,
          echo.port,
          SIZES,
          `ssdeno local → ss-server (${peer.output()})`,
        );
        await checkTunnel(tunnel.addr.port, SIZES, `ssdeno tunnel → ss-server (${peer.output()})`);
        assert.equal(local.udpStats?.repliesDropped, 0);
        assert.equal(tunnel.udpStats?.repliesDropped, 0);
      } finally {
        await tunnel.close();
        await local.close();
        await echo.close();
      }
    },
  });
}
