/**
 * Several users on one AEAD-2017 port (issue 11), the way Outline serves many keys: each
 * connection's first length block is tried with every user's key, the client's last key first.
 * Real clients of each user (libev ss-local, rust sslocal, our local) carry traffic, counted per
 * user; an unknown password gets no answer; UDP finds its user the same way.
 */
import assert from "node:assert/strict";
import { evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod } from "../../crypto/methods.ts";
import { aeadMultiUserServerFraming, KeyHints, trialOrder } from "../../protocol/aead_framing.ts";
import { aeadClientFraming } from "../../protocol/aead_framing.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { peerTest, startSsLocal } from "../interop/_peers.ts";
import { startRustLocal } from "../interop/_rust.ts";
import { datagramBytes, loopback, SocksUdpClient, UdpEcho } from "./_udp_harness.ts";
import { localConfig, probe, serverConfig, waitFor } from "./_harness.ts";

const METHOD = "aes-256-gcm";
const USERS = [
  { name: "alice", password: "alice's password" },
  { name: "bob", password: "bob's password" },
  { name: "carol", password: "carol's password" },
];

Deno.test("trial order puts the client's last key first; hints are bounded", () => {
  assert.deepEqual(trialOrder(4, undefined), [0, 1, 2, 3]);
  assert.deepEqual(trialOrder(4, 2), [2, 0, 1, 3]);
  assert.deepEqual(trialOrder(4, 9), [0, 1, 2, 3]);
  const hints = new KeyHints(2);
  hints.set("a", 1);
  hints.set("b", 2);
  hints.set("c", 3);
  assert.equal(hints.get("a"), undefined, "the oldest address is forgotten");
  assert.equal(hints.get("c"), 3);
});

Deno.test("the framing finds the user whose key opens the first flight, and only then", () => {
  const method = findMethod(METHOD)!;
  const keys = USERS.map((u) => ({ name: u.name, masterKey: evpBytesToKey(u.password, 32) }));
  const target = { type: "ipv4", host: "127.0.0.1", port: 80 } as const;
  const flight = aeadClientFraming(method, keys[2]!.masterKey, target).seal(Uint8Array.of(1, 2));
  const server = aeadMultiUserServerFraming(method, keys, {});
  const step = server.open(flight);
  assert.equal(step.request?.user, "carol");
  assert.deepEqual(step.request?.address, target);

  const stranger = aeadClientFraming(method, evpBytesToKey("nobody", 32), target).seal(
    Uint8Array.of(1),
  );
  assert.throws(
    () => aeadMultiUserServerFraming(method, keys, {}).open(stranger),
    (error) => error instanceof ProtocolError && error.code === "ERR_CIPHER",
  );
});

peerTest({
  name: "one AEAD-2017 port serves libev, rust and ssdeno clients of three users, TCP and UDP",
  peers: ["ss-local", "sslocal", "curl"],
  async fn() {
    await using http = startHttpFixture();
    const echo = new UdpEcho();
    const server = await startServer(
      serverConfig(METHOD, { users: USERS, mode: "tcp_and_udp", handshakeTimeout: 1 }),
      { graceMs: 0 },
    );
    const ours = await startLocal(
      localConfig(METHOD, server.addr.port, { password: USERS[2]!.password, mode: "tcp_and_udp" }),
      { graceMs: 0 },
    );
    try {
      await using libev = await startSsLocal(server.addr.port, {
        method: METHOD,
        password: USERS[0]!.password,
      });
      await using rust = await startRustLocal(server.addr.port, {
        method: METHOD,
        password: USERS[1]!.password,
      });
      for (const [port, times] of [[libev.port, 2], [rust.port, 3], [ours.addr.port, 1]]) {
        for (let i = 0; i < times!; i++) {
          const result = await curlViaSocks(port!, http.url("/blob?size=20000"));
          assert.equal(result.code, 0, result.stderr);
        }
      }
      await waitFor(() => server.stats.statuses.OK === 6, 5000, "six sessions");
      assert.deepEqual(
        USERS.map((u) => server.stats.users[u.name]?.sessions),
        [2, 3, 1],
      );
      assert.ok(server.stats.users["bob"]!.bytesDownlink > 60_000);

      const udp = await SocksUdpClient.open(ours.addr.port);
      try {
        await udp.send(loopback(echo.port), datagramBytes(100, 1));
        const reply = await udp.next(2000);
        assert.deepEqual(reply.payload, datagramBytes(100, 1));
      } finally {
        await udp.close();
      }
      assert.equal(server.udpStats!.users["carol"]?.datagramsRelayed, 1);

      // A key nobody has: no byte back, no early close (drained to the deadline).
      const result = await probe(server.addr.port, crypto.getRandomValues(new Uint8Array(80)));
      assert.deepEqual(result, { closedEarly: false, answer: 0 });
      await waitFor(() => server.stats.statuses.ERR_CIPHER === 1, 5000, "the probe's status");
    } finally {
      await ours.close();
      await server.close();
      await echo.close();
    }
  },
});
