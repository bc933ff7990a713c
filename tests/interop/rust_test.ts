/**
 * Interop with shadowsocks-rust, the reference implementation of SIP022/SIP023, both directions,
 * for all six methods, TCP and UDP:
 *
 * ```
 *   curl / SOCKS5 UDP ─▶ rust sslocal ══▶ ssdeno server ─▶ HTTP fixture / UDP echo
 *   curl / SOCKS5 UDP ─▶ ssdeno local ══▶ rust ssserver ─▶ HTTP fixture / UDP echo
 * ```
 *
 * and 2022 multi-user (SIP023) both ways: a client with `iPSK:uPSK` against a server with
 * `users`, and an unknown user refused.
 * @module
 */
import assert from "node:assert/strict";
import { findMethod } from "../../crypto/methods.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture, waitUntil } from "../_fixtures.ts";
import { randomPsk, UdpEcho } from "../e2e/_udp_harness.ts";
import { localConfig, serverConfig } from "../e2e/_harness.ts";
import {
  assertAllOk,
  checkSocksUdp,
  checkTransfers,
  endedSessions,
  nonZeroStatuses,
  SESSIONS_PER_CHECK,
} from "./_checks.ts";
import { peerTest } from "./_peers.ts";
import { startRustLocal, startRustServer } from "./_rust.ts";

const METHODS = [
  "aes-128-gcm",
  "aes-256-gcm",
  "chacha20-ietf-poly1305",
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;
/** The 2022 methods with identity headers, which SIP023 multi-user needs. */
const MULTI_USER_METHODS = ["2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"] as const;
/** Datagram sizes; rust and ssdeno both take datagrams far larger than libev's 2.8 KB. */
const UDP_SIZES = [1, 64, 512, 1400, 4096, 16_384];

/** A password of the method's kind: any string for AEAD-2017, a PSK of its key size for 2022. */
function passwordFor(method: string): string {
  const info = findMethod(method)!;
  return info.family === "aead2022" ? randomPsk(info.keySize) : "rust-interop-password";
}

const UDP = { mode: "tcp_and_udp", udpMaxAssociations: 256 } as const;

for (const method of METHODS) {
  peerTest({
    name: `rust sslocal carries TCP and UDP through the ssdeno server with ${method}`,
    peers: ["sslocal", "curl"],
    async fn() {
      const password = passwordFor(method);
      await using http = startHttpFixture();
      const echo = new UdpEcho();
      const server = await startServer(serverConfig(method, { password, ...UDP }), { graceMs: 0 });
      try {
        await using local = await startRustLocal(server.addr.port, { method, password });
        await checkTransfers(local.port, http, local.output);
        await assertAllOk(server, SESSIONS_PER_CHECK, "ssdeno server");
        await checkSocksUdp(local.port, echo.port, UDP_SIZES, `rust sslocal → ssdeno ${method}`);
        const udp = server.udpStats!;
        assert.equal(udp.statuses.OK, UDP_SIZES.length, JSON.stringify(udp.statuses));
        await waitUntil(() => udp.repliesRelayed >= UDP_SIZES.length);
      } finally {
        await server.close();
        await echo.close();
      }
    },
  });

  peerTest({
    name: `the ssdeno local carries TCP and UDP through rust ssserver with ${method}`,
    peers: ["ssserver", "curl"],
    async fn() {
      const password = passwordFor(method);
      await using http = startHttpFixture();
      const echo = new UdpEcho();
      await using server = await startRustServer({ method, password });
      const local = await startLocal(localConfig(method, server.port, { password, ...UDP }), {
        graceMs: 0,
      });
      try {
        await checkTransfers(local.addr.port, http, server.output);
        await assertAllOk(local, SESSIONS_PER_CHECK, "ssdeno local");
        await checkSocksUdp(local.addr.port, echo.port, UDP_SIZES, `ssdeno → rust ${method}`);
        assert.equal(local.udpStats?.repliesDropped, 0);
      } finally {
        await local.close();
        await echo.close();
      }
    },
  });
}

/** Two users of one multi-user server: their names and PSKs, and the server's identity PSK. */
function multiUser(method: string) {
  const keySize = findMethod(method)!.keySize;
  const users = ["alice", "bob"].map((name) => ({ name, password: randomPsk(keySize) }));
  return { ipsk: randomPsk(keySize), users, bob: users[1]!, stranger: randomPsk(keySize) };
}

for (const method of MULTI_USER_METHODS) {
  peerTest({
    name: `rust sslocal as one user (iPSK:uPSK) of a multi-user ssdeno server with ${method}`,
    peers: ["sslocal", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      await using http = startHttpFixture();
      const echo = new UdpEcho();
      const server = await startServer(
        serverConfig(method, { password: ipsk, users, ...UDP, handshakeTimeout: 1 }),
        { graceMs: 0 },
      );
      try {
        {
          await using local = await startRustLocal(server.addr.port, {
            method,
            password: `${ipsk}:${bob.password}`,
          });
          await checkTransfers(local.port, http, local.output);
          await assertAllOk(server, SESSIONS_PER_CHECK, "ssdeno server");
          await checkSocksUdp(local.port, echo.port, UDP_SIZES, `rust sslocal (bob) → ssdeno`);
          assert.equal(server.stats.users["bob"]?.sessions, SESSIONS_PER_CHECK);
          assert.equal(server.stats.users["alice"]?.sessions, 0);
          assert.equal(server.udpStats?.users["bob"]?.datagramsRelayed, UDP_SIZES.length);
        }
        // A user the server does not know: refused like any other bad first flight.
        await using local = await startRustLocal(server.addr.port, {
          method,
          password: `${ipsk}:${stranger}`,
        });
        const result = await curlViaSocks(local.port, http.url("/blob?size=1024"), {
          maxTimeSeconds: 10,
        });
        assert.notEqual(result.code, 0, "curl succeeded as an unknown user");
        assert.equal(result.stdout.length, 0);
        await waitUntil(() => endedSessions(server) > SESSIONS_PER_CHECK);
        assert.deepEqual(nonZeroStatuses(server), { OK: SESSIONS_PER_CHECK, ERR_CIPHER: 1 });
      } finally {
        await server.close();
        await echo.close();
      }
    },
  });

  peerTest({
    name: `the ssdeno local as one user (iPSK:uPSK) of a multi-user rust ssserver with ${method}`,
    peers: ["ssserver", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      await using http = startHttpFixture();
      const echo = new UdpEcho();
      await using server = await startRustServer({ method, password: ipsk, users });
      const asBob = localConfig(method, server.port, {
        password: `${ipsk}:${bob.password}`,
        ...UDP,
      });
      const local = await startLocal(asBob, { graceMs: 0 });
      const strangerLocal = await startLocal({ ...asBob, password: `${ipsk}:${stranger}` }, {
        graceMs: 0,
      });
      try {
        await checkTransfers(local.addr.port, http, server.output);
        await assertAllOk(local, SESSIONS_PER_CHECK, "ssdeno local");
        await checkSocksUdp(local.addr.port, echo.port, UDP_SIZES, `ssdeno (bob) → rust`);
        const refused = await curlViaSocks(strangerLocal.addr.port, http.url("/blob?size=1024"), {
          maxTimeSeconds: 10,
        });
        assert.notEqual(refused.code, 0, `rust served an unknown user\n${server.output()}`);
        assert.equal(refused.stdout.length, 0);
        assert.equal(http.requests.get("/blob"), 2, "only bob's two downloads reached the target");
      } finally {
        await strangerLocal.close();
        await local.close();
        await echo.close();
      }
    },
  });
}
