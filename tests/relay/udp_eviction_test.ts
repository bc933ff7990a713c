/**
 * A flood of new UDP source ports against a small NAT table: evicted associations must give
 * their sockets back at eviction, so the relay never holds more open sockets than the table's
 * capacity plus the documented margin (relay/datagram_service.ts: one association's sockets
 * still closing, one socket here as every target is IPv4).
 *
 * The flood runs in a child process (tests/relay/_udp_flood.ts): sends from this process would
 * let the relay's event loop turn between datagrams, which hides the problem. Sockets are
 * counted in /proc/self/fd, every millisecond the event loop lets the sampler run.
 */
import assert from "node:assert/strict";
import { findMethod } from "../../crypto/methods.ts";
import { serveDatagrams } from "../../relay/datagram_service.ts";
import { silentLogger } from "../../relay/log.ts";
import { createServerUdpCodec } from "../../relay/shadowsocks_udp.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { spawnCollected } from "../_child.ts";
import { UdpEcho } from "../e2e/_udp_harness.ts";

const CAPACITY = 32;
/** One evicted association's socket may still be closing while the new one opens. */
const MARGIN = 1;
const FLOOD_SOURCES = 3000;

/** Open sockets of this process (Linux: /proc/self/fd links named `socket:[inode]`). */
function openSockets(): number {
  let count = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`).startsWith("socket:")) count++;
    } catch {
      // The descriptor closed between the listing and the link: not open.
    }
  }
  return count;
}

Deno.test({
  name: "a flood of new UDP sources never holds more sockets than the NAT table's capacity",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const echo = new UdpEcho();
    const inbound = UdpSocket.bind("127.0.0.1", 0);
    const method = findMethod("aes-256-gcm")!;
    const service = serveDatagrams(inbound, createServerUdpCodec(method, "e2e-password"), {
      name: "flood",
      logger: silentLogger,
      maxAssociations: CAPACITY,
      idleTimeoutMs: 60_000,
      allowPrivateTargets: true,
      ipv6First: false,
    });
    const before = openSockets();
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, openSockets() - before);
    }, 1);
    const flood = spawnCollected(Deno.execPath(), [
      "run",
      "--allow-net",
      "--unstable-net",
      new URL("./_udp_flood.ts", import.meta.url).pathname,
      String(inbound.addr.port),
      String(echo.port),
      String(FLOOD_SOURCES),
    ]);
    try {
      const status = await flood.exited;
      assert.equal(status.code, 0, flood.log());
      // The datagrams still queued in the socket are relayed by the time one more round trip
      // through the relay would be; a pause does it without a client of our own.
      await new Promise((resolve) => setTimeout(resolve, 200));
      most = Math.max(most, openSockets() - before);
      const { stats } = service;
      assert.ok(
        stats.associationsEvicted >= 4 * CAPACITY,
        `only ${stats.associationsEvicted} evictions: the flood did not test eviction`,
      );
      assert.ok(
        most <= CAPACITY + MARGIN,
        `${most} sockets open at once for a table of ${CAPACITY} (margin ${MARGIN})`,
      );
      assert.equal(stats.associations, CAPACITY);
    } finally {
      clearInterval(sampler);
      await flood.end();
      await service.close();
      await echo.close();
    }
    // The relay's inbound socket, the echo's and every association's: all released.
    assert.equal(openSockets(), before - 2);
  },
});
