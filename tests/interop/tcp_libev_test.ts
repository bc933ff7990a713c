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
import type { SessionStatus } from "../../protocol/errors.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import {
  curlViaSocks,
  deterministicBytes,
  type HttpFixture,
  randomBytes,
  sha256Hex,
  startHttpFixture,
  waitUntil,
} from "../_fixtures.ts";
import {
  localConfig as harnessLocalConfig,
  serverConfig as harnessServerConfig,
} from "../e2e/_harness.ts";
import { type PeerProcess, peerTest, startSsLocal, startSsServer } from "./_peers.ts";

const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;
const PASSWORD = "interop-test-password";
const DOWNLOAD_SIZE = 4 * 1024 * 1024;
const UPLOAD_SIZE = 1024 * 1024;
const BY_NAME_SIZE = 64 * 1024;
/** Sessions `checkTransfers` opens: download, echo, download by name. */
const SESSIONS_PER_CHECK = 3;

/** The e2e harness's configs, with this file's password (the libev peers use it too). */
function serverConfig(method: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return harnessServerConfig(method, { password: PASSWORD, ...overrides });
}

function localConfig(method: string, serverPort: number): LocalConfig {
  return harnessLocalConfig(method, serverPort, { password: PASSWORD });
}

/** Sum of every status counter: how many sessions have ended. */
function endedSessions(service: RunningService): number {
  return Object.values(service.stats.statuses).reduce((sum, n) => sum + n, 0);
}

function nonZeroStatuses(service: RunningService): Partial<Record<SessionStatus, number>> {
  return Object.fromEntries(
    Object.entries(service.stats.statuses).filter(([, n]) => n > 0),
  ) as Partial<Record<SessionStatus, number>>;
}

/** Waits until `expected` sessions have ended, then asserts that all of them ended `OK`. */
async function assertAllOk(service: RunningService, expected: number, role: string) {
  await waitUntil(() => endedSessions(service) >= expected, {
    message: () =>
      `The ${role} ended ${endedSessions(service)} of ${expected} sessions within 5 s: ${
        JSON.stringify(nonZeroStatuses(service))
      }`,
  });
  assert.deepEqual(nonZeroStatuses(service), { OK: expected }, `${role} session statuses`);
}

/**
 * Through the SOCKS5 proxy on `socksPort`: a download by IP with SHA-256 check, a 1 MiB echo,
 * and a download addressed as `localhost`.
 */
async function checkTransfers(socksPort: number, http: HttpFixture, peer: PeerProcess) {
  const context = (what: string, stderr: string) => `${what}\n${stderr.trim()}\n${peer.output()}`;

  const download = await curlViaSocks(socksPort, http.url(`/blob?size=${DOWNLOAD_SIZE}`));
  assert.equal(download.code, 0, context("Download failed", download.stderr));
  assert.equal(download.stdout.length, DOWNLOAD_SIZE, "downloaded length");
  assert.equal(
    await sha256Hex(download.stdout),
    await sha256Hex(deterministicBytes(DOWNLOAD_SIZE)),
    "SHA-256 of the downloaded body",
  );

  const upload = randomBytes(UPLOAD_SIZE);
  const echo = await curlViaSocks(socksPort, http.url("/echo"), { body: upload });
  assert.equal(echo.code, 0, context("Echo failed", echo.stderr));
  assert.equal(echo.stdout.length, UPLOAD_SIZE, "echoed length");
  assert.ok(
    echo.stdout.every((byte, i) => byte === upload[i]),
    "The echoed body differs from the uploaded one",
  );

  const byName = await curlViaSocks(socksPort, http.url(`/blob?size=${BY_NAME_SIZE}`, "localhost"));
  assert.equal(byName.code, 0, context("Download by host name failed", byName.stderr));
  assert.deepEqual(byName.stdout, deterministicBytes(BY_NAME_SIZE), "body fetched by host name");

  assert.equal(http.requests.get("/blob"), 2, "requests the HTTP fixture saw on /blob");
  assert.equal(http.requests.get("/echo"), 1, "requests the HTTP fixture saw on /echo");
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
          await checkTransfers(local.port, http, local);
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
          await checkTransfers(local.addr.port, http, server);
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
