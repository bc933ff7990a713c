/**
 * Interop with sing-box, the core inside Hiddify, NekoBox, SFA/SFI and the Clash Meta family:
 * sing-box as a client (`mixed` inbound → `shadowsocks` outbound) → ssdeno server, and ssdeno
 * local → sing-box `shadowsocks` inbound, for the three 2022 methods and one AEAD-2017 method,
 * TCP and UDP; and a multi-user sing-box inbound (`users`) with the ssdeno local as one user.
 * The paths and checks are in `_scenarios.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { startSingBoxClient, startSingBoxServer } from "./_go_peers.ts";
import { peerTest } from "./_peers.ts";
import {
  MULTI_USER_METHODS,
  multiUser,
  passwordFor,
  peerLocalToSsdeno,
  peerRefusesUnknownUser,
  ssdenoRefusesUnknownUser,
  ssdenoToPeerServer,
  UDP_SIZES,
} from "./_scenarios.ts";

const METHODS = [
  "chacha20-ietf-poly1305",
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;
/**
 * sing-box 1.12 reads datagrams into 16 KiB buffers: a 16 384-byte payload plus its headers is
 * cut short (as a server it then fails to decrypt it; as a client it passes a truncated datagram
 * on). Up to 8 KiB both ways.
 */
const SING_BOX_UDP_SIZES = UDP_SIZES.filter((size) => size <= 8192);

/**
 * sing-box 1.12's 2022 client (sing-shadowsocks v0.2.7) publishes its request salt only after
 * its first write returns, so a server that answers before that (ours often does: the first
 * flight carries the request, the target answers at once on loopback) is rejected with "bad
 * request salt" now and then, under load, and closes the application's connection (curl: "Empty
 * reply from server"; sing-box's log line may not be written yet when curl fails). A known
 * client race, fixed upstream after v0.2.7: that failure, and only that one, runs the scenario
 * again (at most twice more). Any other failure fails the test.
 */
async function withSingBoxSaltRaceRetry(run: () => Promise<void>) {
  for (let attempt = 1;; attempt++) {
    try {
      await run();
      return;
    } catch (error) {
      // Failure messages carry the peer's log, where sing-box names the race.
      const race = /bad request salt|Empty reply from server/.test(String(error));
      if (!race || attempt >= 3) throw error;
      console.log(`sing-box client salt race (attempt ${attempt}); running the scenario again`);
    }
  }
}

for (const method of METHODS) {
  peerTest({
    name: `sing-box as a client carries TCP and UDP through the ssdeno server with ${method}`,
    peers: ["sing-box", "curl"],
    async fn() {
      const password = passwordFor(method);
      await withSingBoxSaltRaceRetry(() =>
        peerLocalToSsdeno(
          method,
          { password },
          (port) => startSingBoxClient(port, { method, password }),
          SING_BOX_UDP_SIZES,
        ).then(() => {})
      );
    },
  });

  peerTest({
    name: `the ssdeno local carries TCP and UDP through a sing-box server with ${method}`,
    peers: ["sing-box", "curl"],
    async fn() {
      const password = passwordFor(method);
      await using server = await startSingBoxServer({ method, password });
      await ssdenoToPeerServer(method, { password }, server, SING_BOX_UDP_SIZES);
    },
  });
}

for (const method of MULTI_USER_METHODS) {
  peerTest({
    name: `the ssdeno local as one user of a multi-user sing-box inbound with ${method}`,
    peers: ["sing-box", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      await using server = await startSingBoxServer({ method, password: ipsk, users });
      await ssdenoToPeerServer(
        method,
        { password: `${ipsk}:${bob.password}` },
        server,
        SING_BOX_UDP_SIZES,
      );
      await peerRefusesUnknownUser(method, `${ipsk}:${stranger}`, server);
    },
  });

  peerTest({
    name: `sing-box as one user (iPSK:uPSK) of a multi-user ssdeno server with ${method}`,
    peers: ["sing-box", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      const server = { password: ipsk, users };
      // The same client race as above: seen here once in CI, after the server got faster.
      let result: Awaited<ReturnType<typeof peerLocalToSsdeno>> | undefined;
      await withSingBoxSaltRaceRetry(async () => {
        result = await peerLocalToSsdeno(
          method,
          server,
          (port) => startSingBoxClient(port, { method, password: `${ipsk}:${bob.password}` }),
          SING_BOX_UDP_SIZES,
        );
      });
      const { stats, udpStats } = result!;
      assert.equal(stats.users["bob"]?.sessions, 3);
      assert.equal(stats.users["alice"]?.sessions, 0);
      assert.equal(udpStats?.users["bob"]?.datagramsRelayed, SING_BOX_UDP_SIZES.length);
      await ssdenoRefusesUnknownUser(
        method,
        server,
        (port) => startSingBoxClient(port, { method, password: `${ipsk}:${stranger}` }),
      );
    },
  });
}
