/**
 * UDP abuse: random, truncated and tampered datagrams, well-encrypted garbage, and a flood of new
 * source ports against a server with a small NAT table. The server must answer none of the
 * junk, count every piece under its status, never hold more associations than its bound, and
 * keep relaying a valid client's traffic throughout.
 *
 * Pacing: the server reads its socket in order and counts a junk datagram before reading the
 * next one, so once the valid client's round trip after a batch completes, the whole batch has
 * been counted. Batches stay small enough for the default socket buffer.
 */
import assert from "node:assert/strict";
import type { RunningService } from "../../relay/service.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { startServer } from "../../server.ts";
import { randomBytes } from "../_fixtures.ts";
import { serverConfig, startChain } from "../e2e/_harness.ts";
import {
  datagramBytes,
  loopback,
  ShadowsocksUdpClient,
  SocksUdpClient,
  UdpEcho,
  UdpPeer,
} from "../e2e/_udp_harness.ts";

const METHOD = "aes-256-gcm";
const CAPACITY = 32;
const BATCH = 50;
const RANDOM_DATAGRAMS = 1000;
const FLOOD_SOURCES = 3000;

/** Checks the association count against the bound and the opened/closed bookkeeping. */
function assertBounded(server: RunningService): void {
  const stats = server.udpStats!;
  assert.ok(stats.associations <= CAPACITY, `${stats.associations} associations`);
  assert.equal(
    stats.associations,
    stats.associationsOpened - stats.associationsEvicted - stats.associationsExpired,
  );
}

Deno.test("the UDP server drops junk silently, stays bounded under a port flood, and keeps relaying", async () => {
  const echo = new UdpEcho();
  const server = await startServer(
    serverConfig(METHOD, { mode: "udp_only", udpMaxAssociations: CAPACITY }),
    { graceMs: 0 },
  );
  const valid = new ShadowsocksUdpClient(METHOD, "e2e-password", server.addr.port);
  const attacker = new ShadowsocksUdpClient(METHOD, "e2e-password", server.addr.port);
  const stats = server.udpStats!;
  let roundTrips = 0;
  /** One valid round trip; it also proves every earlier datagram was read. */
  const roundTrip = async () => {
    const payload = datagramBytes(200, roundTrips);
    await valid.send(loopback(echo.port), payload);
    const reply = await valid.next();
    assert.deepEqual(reply.address, loopback(echo.port));
    assert.deepEqual(reply.payload, payload);
    roundTrips++;
    assertBounded(server);
  };
  try {
    await roundTrip();

    // Random datagrams of 0 to 599 bytes, zero-length included.
    for (let i = 0; i < RANDOM_DATAGRAMS; i++) {
      await attacker.sendRaw(randomBytes(i % 600));
      if (i % BATCH === BATCH - 1) await roundTrip();
    }
    await roundTrip();
    assert.equal(stats.statuses.ERR_CIPHER, RANDOM_DATAGRAMS);

    // Every strict prefix and every single-bit flip of a valid packet.
    const packet = attacker.seal(loopback(echo.port), datagramBytes(10, 1));
    for (let length = 0; length < packet.length; length++) {
      await attacker.sendRaw(packet.slice(0, length));
      if (length % BATCH === BATCH - 1) await roundTrip();
    }
    for (let i = 0; i < packet.length; i++) {
      const tampered = packet.slice();
      tampered[i]! ^= 1 << (i % 8);
      await attacker.sendRaw(tampered);
      if (i % BATCH === BATCH - 1) await roundTrip();
    }
    await roundTrip();
    assert.equal(stats.statuses.ERR_CIPHER, RANDOM_DATAGRAMS + 2 * packet.length);

    // Correctly sealed, but the address inside is unknown, cut short or missing.
    const badAddresses = [
      Uint8Array.of(0x09, 1, 2, 3, 4, 0, 53),
      Uint8Array.of(0x01, 127, 0, 0),
      Uint8Array.of(0x04, 0, 0),
      Uint8Array.of(0x03, 0, 0, 53),
      Uint8Array.of(0x03, 200, 0x61),
      Uint8Array.of(0x03, 2, 0xff, 0xfe, 0, 53),
    ];
    for (const plaintext of badAddresses) await attacker.sendRaw(attacker.sealPlaintext(plaintext));
    await roundTrip();
    assert.equal(stats.statuses.ERR_READ_ADDRESS, badAddresses.length);

    // None of it was answered, and none of it opened an association.
    assert.ok(await attacker.peer.silentFor(200));
    assert.equal(attacker.peer.pending, 0);
    assert.equal(stats.associationsOpened, 1);

    // A flood of new source ports, each with one valid datagram: the table stays at its bound.
    let maxSeen = 0;
    for (let i = 0; i < FLOOD_SOURCES; i++) {
      using socket = UdpSocket.bind("127.0.0.1", 0);
      await socket.send(attacker.seal(loopback(echo.port), Uint8Array.of(i & 0xff)), {
        hostname: "127.0.0.1",
        port: server.addr.port,
      });
      if (i % BATCH === BATCH - 1) {
        await roundTrip();
        maxSeen = Math.max(maxSeen, stats.associations);
      }
    }
    await roundTrip();
    assert.equal(maxSeen, CAPACITY);
    assert.ok(stats.associationsOpened > FLOOD_SOURCES);
    assert.ok(stats.associationsEvicted >= FLOOD_SOURCES + 1 - CAPACITY);
    assertBounded(server);
    assert.equal(stats.statuses.ERR_CIPHER, RANDOM_DATAGRAMS + 2 * packet.length);
    assert.equal(stats.statuses.ERR_READ_ADDRESS, badAddresses.length);
  } finally {
    await attacker.close();
    await valid.close();
    await server.close();
    await echo.close();
  }
  assert.equal(stats.associations, 0);
});

Deno.test("the local's relay socket drops junk from its own client and keeps relaying", async () => {
  const echo = new UdpEcho();
  const chain = await startChain(METHOD, {
    server: { mode: "tcp_and_udp" },
    local: { mode: "tcp_and_udp" },
  });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  const stranger = new UdpPeer();
  try {
    const stats = chain.local.udpStats!;
    const first = datagramBytes(50, 1);
    assert.deepEqual((await client.roundTrip(loopback(echo.port), first)).payload, first);
    for (let i = 0; i < 300; i++) {
      // Random bytes behind RSV FRAG, cut short or with an unknown address type, so that no
      // datagram can name a real target (tests never touch the internet).
      const junk = randomBytes(1 + (i % 300));
      junk[0] = 0;
      junk[1] = 0;
      if (junk.length > 2) junk[2] = i % 2 === 0 ? 0 : junk[2]!;
      if (junk.length > 3) junk[3] = 0x05 + (junk[3]! % 0xfb);
      await client.peer.send(junk, client.relay.port, client.relay.hostname);
      await stranger.send(junk, client.relay.port, client.relay.hostname);
      if (i % BATCH === BATCH - 1) {
        const payload = datagramBytes(100, i);
        assert.deepEqual((await client.roundTrip(loopback(echo.port), payload)).payload, payload);
      }
    }
    assert.equal(stats.foreignDropped, 300);
    assert.equal(stats.statuses.ERR_READ_ADDRESS, 300);
    assert.equal(stats.statuses.OK, 1 + 300 / BATCH);
    assert.ok(await stranger.silentFor(100));
    assert.equal(stats.associations, 1);
  } finally {
    await stranger.close();
    await client.close();
    await chain.close();
    await echo.close();
  }
});
