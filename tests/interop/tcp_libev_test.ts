/**
 * TCP interop with shadowsocks-libev, both directions, for every AEAD method:
 *
 * ```
 *   curl ─SOCKS5─▶ libev ss-local ══▶ ssdeno server ─▶ HTTP fixture
 *   curl ─SOCKS5─▶ ssdeno local   ══▶ libev ss-server ─▶ HTTP fixture
 * ```
 *
 * Each path downloads a few MiB (SHA-256 compared with the served bytes), echoes 1 MiB of random
 * bytes, and fetches by host name so the server side resolves `localhost` itself.
 * @module
 */
import assert from "node:assert/strict";
import type { LocalConfig, ServerConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture, waitUntil } from "../_fixtures.ts";
import {
  localConfig as harnessLocalConfig,
  serverConfig as harnessServerConfig,
} from "../e2e/_harness.ts";
import {
  assertAllOk,
  checkTransfers,
  endedSessions,
  localTarget,
  nonZeroStatuses,
  SESSIONS_PER_CHECK,
} from "./_checks.ts";
import { peerTest, startSsLocal, startSsServer } from "./_peers.ts";

const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;
const PASSWORD = "interop-test-password";
/** The e2e harness's configs, with this file's password (the libev peers use it too). */
function serverConfig(method: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return harnessServerConfig(method, { password: PASSWORD, ...overrides });
}

function localConfig(method: string, serverPort: number): LocalConfig {
  return harnessLocalConfig(method, serverPort, { password: PASSWORD });
}

peerTest({
  name: "ss-local from libev relays HTTP through the ssdeno server",
  peers: ["ss-local", "curl"],
  async fn(t) {
    for (const method of METHODS) {
      await t.step(`with ${method}`, async () => {
        await using http = startHttpFixture();
        const server = await startServer(serverConfig(method));
        try {
          await using local = await startSsLocal(server.addr.port, {
            method,
            password: PASSWORD,
          });
          await checkTransfers(local.port, localTarget(http), local.output);
          await assertAllOk(server, SESSIONS_PER_CHECK, "ssdeno server");
        } finally {
          await server.close();
        }
      });
    }
  },
});

peerTest({
  name: "the ssdeno local relays HTTP through ss-server from libev",
  peers: ["ss-server", "curl"],
  async fn(t) {
    for (const method of METHODS) {
      await t.step(`with ${method}`, async () => {
        await using http = startHttpFixture();
        await using server = await startSsServer({ method, password: PASSWORD });
        const local = await startLocal(localConfig(method, server.port));
        try {
          await checkTransfers(local.addr.port, localTarget(http), server.output);
          await assertAllOk(local, SESSIONS_PER_CHECK, "ssdeno local");
        } finally {
          await local.close();
        }
      });
    }
  },
});

peerTest({
  name: "a wrong password from libev ss-local ends in ERR_CIPHER on the ssdeno server",
  peers: ["ss-local", "curl"],
  async fn(t) {
    for (const method of METHODS) {
      await t.step(`with ${method}`, async () => {
        await using http = startHttpFixture();
        const server = await startServer(serverConfig(method, { handshakeTimeout: 1 }));
        try {
          await using local = await startSsLocal(server.addr.port, {
            method,
            password: `not-${PASSWORD}`,
          });
          const started = Date.now();
          const result = await curlViaSocks(local.port, http.url("/blob?size=1024"), {
            maxTimeSeconds: 10,
          });
          assert.notEqual(
            result.code,
            0,
            `curl succeeded with a wrong password\n${local.output()}`,
          );
          assert.equal(result.stdout.length, 0, "bytes received with a wrong password");
          await waitUntil(() => endedSessions(server) >= 1, {
            message: () => `No session ended: ${JSON.stringify(nonZeroStatuses(server))}`,
          });
          assert.deepEqual(nonZeroStatuses(server), { ERR_CIPHER: 1 }, "server session statuses");
          assert.equal(http.requests.size, 0, "requests reaching the HTTP fixture");
          // The server keeps reading until its handshake deadline instead of closing at once.
          assert.ok(
            Date.now() - started >= 900,
            `The server gave up after ${Date.now() - started} ms, before its 1 s deadline`,
          );
        } finally {
          await server.close();
        }
      });
    }
  },
});
