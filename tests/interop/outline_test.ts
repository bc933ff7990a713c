/**
 * Interop with outline-ss-server, the most deployed AEAD server with many keys on one port:
 * the ssdeno local, holding the key that is not first on the port, carries TCP and UDP through
 * it, for the three AEAD-2017 methods. Outline dials only public addresses, so the target is the
 * test host in its own network namespace (`../_target_host.ts`); with `CI=true` a missing host
 * is a failure, like a missing peer.
 * @module
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { localConfig } from "../e2e/_harness.ts";
import { assertAllOk, checkSocksUdp, checkTransfers } from "./_checks.ts";
import { startOutlineServer } from "./_go_peers.ts";
import { peerTest } from "./_peers.ts";
import { startRemoteTarget } from "./_remote_target.ts";
import { UDP_SIZES, WITH_UDP } from "./_scenarios.ts";

const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;

for (const method of METHODS) {
  peerTest({
    name:
      `the ssdeno local carries TCP and UDP through outline-ss-server (second key) with ${method}`,
    peers: ["outline-ss-server", "curl"],
    async fn() {
      await using target = await startRemoteTarget();
      const mine = { id: "second", cipher: method, secret: "outline-second-key-secret" };
      await using server = await startOutlineServer([
        { id: "first", cipher: method, secret: "outline-first-key-secret" },
        mine,
        { id: "third", cipher: "chacha20-ietf-poly1305", secret: "outline-third-key-secret" },
      ]);
      const local = await startLocal(
        localConfig(method, server.port, { ...WITH_UDP, password: mine.secret }),
        { graceMs: 0 },
      );
      try {
        const sessions = await checkTransfers(local.addr.port, target.http, server.output);
        await assertAllOk(local, sessions, "ssdeno local");
        await checkSocksUdp(local.addr.port, target.udp, UDP_SIZES, `ssdeno → outline ${method}`);
        assert.equal(local.udpStats?.repliesDropped, 0);
      } finally {
        await local.close();
      }
    },
  });
}
