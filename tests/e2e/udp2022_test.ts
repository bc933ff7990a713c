/**
 * Shadowsocks 2022 UDP end to end on loopback, port 0:
 *
 * ```
 *   SOCKS5 UDP client ─▶ ssdeno local ══▶ ssdeno server ─▶ UDP echo
 *   UDP client ─▶ ssdeno tunnel ══▶ ssdeno server ─▶ UDP echo
 *   raw 2022 client (chosen session and packet IDs, clock, source port) ══▶ ssdeno server
 * ```
 *
 * The server runs `udp_only` so these tests exercise the UDP paths alone.
 */
import assert from "node:assert/strict";
import { InvalidPskError } from "../../crypto/kdf2022.ts";
import { findMethod } from "../../crypto/methods.ts";
import type { Address } from "../../protocol/address.ts";
import { createLogger } from "../../relay/log.ts";
import type { RunningService } from "../../relay/service.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { startTunnel } from "../../tunnel.ts";
import { waitUntil } from "../_fixtures.ts";
import { localConfig, serverConfig } from "./_harness.ts";
import {
  datagramBytes,
  loopback,
  randomPsk,
  Shadowsocks2022UdpClient,
  SocksUdpClient,
  UdpEcho,
  UdpPeer,
} from "./_udp_harness.ts";

const METHODS_2022 = [
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;
/** The methods with identity headers (SIP023): multi-user needs one of them. */
const AES_METHODS_2022 = METHODS_2022.filter((method) => method.includes("aes"));
const SERVER = { mode: "udp_only" } as const;
const LOCAL = { mode: "tcp_and_udp" } as const;
/** Payload sizes every method carries, up to a 60 000-byte datagram. */
const SIZES = [0, 1, 100, 1400, 8192, 60_000];

function keyFor(method: string): string {
  return randomPsk(findMethod(method)!.keySize);
}

function assertReply(
  reply: { address: Address; payload: Uint8Array },
  from: Address,
  expected: Uint8Array,
): void {
  assert.deepEqual(reply.address, from);
  assert.equal(reply.payload.length, expected.length);
  assert.ok(
    reply.payload.every((byte, i) => byte === expected[i]),
    `payload of ${expected.length} bytes differs`,
  );
}

/** A `udp_only` 2022 server with key `password` (and `users`), logging into `lines`. */
function startServer2022(
  method: string,
  password: string,
  options: { users?: { name: string; password: string }[]; lines?: string[] } = {},
): Promise<RunningService> {
  const lines = options.lines;
  return startServer(
    serverConfig(method, {
      ...SERVER,
      password,
      ...(options.users ? { users: options.users } : {}),
    }),
    {
      graceMs: 0,
      ...(lines ? { logger: createLogger("info", (line) => lines.push(line)) } : {}),
    },
  );
}

for (const method of METHODS_2022) {
  Deno.test(`SOCKS5 UDP through local and server echoes every byte with ${method}`, async () => {
    const echo = new UdpEcho();
    const key = keyFor(method);
    const server = await startServer2022(method, key);
    const local = await startLocal(
      localConfig(method, server.addr.port, { ...LOCAL, password: key }),
      { graceMs: 0 },
    );
    const clients = [
      await SocksUdpClient.open(local.addr.port),
      await SocksUdpClient.open(local.addr.port),
    ];
    try {
      const [first, second] = clients as [SocksUdpClient, SocksUdpClient];
      for (const [index, size] of SIZES.entries()) {
        const payload = datagramBytes(size, index);
        assertReply(
          await first.roundTrip(loopback(echo.port), payload),
          loopback(echo.port),
          payload,
        );
      }
      // A name: the server resolves it; the reply carries the address that answered.
      const named = datagramBytes(300, 99);
      assertReply(
        await second.roundTrip({ type: "domain", host: "localhost", port: echo.port }, named),
        loopback(echo.port),
        named,
      );
      // Each association is its own 2022 session on the server.
      const stats = server.udpStats!;
      assert.equal(stats.statuses.OK, SIZES.length + 1);
      assert.equal(stats.associations, 2);
      assert.equal(stats.repliesRelayed, SIZES.length + 1);
      assert.equal(local.udpStats?.repliesRelayed, SIZES.length + 1);
      assert.equal(local.udpStats?.repliesDropped, 0);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await local.close();
      await server.close();
      await echo.close();
    }
  });

  Deno.test(`the tunnel forwards UDP to its fixed target with ${method}`, async () => {
    const echo = new UdpEcho();
    const key = keyFor(method);
    const server = await startServer2022(method, key);
    const tunnel = await startTunnel({
      ...localConfig(method, server.addr.port, { mode: "udp_only", password: key }),
      tunnelHost: "127.0.0.1",
      tunnelPort: echo.port,
    }, { graceMs: 0 });
    const peers = [new UdpPeer(), new UdpPeer()];
    try {
      for (const [p, peer] of peers.entries()) {
        for (const [index, size] of [1, 512, 60_000].entries()) {
          const payload = datagramBytes(size, p * 10 + index);
          await peer.send(payload, tunnel.addr.port);
          const { data, from } = await peer.next();
          assert.equal(from.port, tunnel.addr.port);
          assert.deepEqual(data, payload);
        }
      }
      assert.equal(tunnel.udpStats?.associations, 2);
      assert.equal(server.udpStats?.associations, 2);
      assert.equal(server.udpStats?.statuses.OK, 6);
      assert.equal(tunnel.udpStats?.repliesDropped, 0);
    } finally {
      await Promise.all(peers.map((peer) => peer.close()));
      await tunnel.close();
      await server.close();
      await echo.close();
    }
  });
}

for (const method of AES_METHODS_2022) {
  Deno.test(`a multi-user server counts each of 3 users' UDP with ${method}`, async () => {
    const echo = new UdpEcho();
    const identity = keyFor(method);
    const users = ["alice", "bob", "carol"].map((name) => ({ name, password: keyFor(method) }));
    const server = await startServer2022(method, identity, { users });
    const locals = await Promise.all(users.map((user) =>
      startLocal(
        localConfig(method, server.addr.port, {
          ...LOCAL,
          password: `${identity}:${user.password}`,
        }),
        { graceMs: 0 },
      )
    ));
    const clients = await Promise.all(locals.map((local) => SocksUdpClient.open(local.addr.port)));
    const stranger = new Shadowsocks2022UdpClient(
      method,
      `${identity}:${keyFor(method)}`,
      server.addr.port,
    );
    try {
      // User i sends i + 1 datagrams of 100 bytes.
      for (const [i, client] of clients.entries()) {
        for (let n = 0; n <= i; n++) {
          const payload = datagramBytes(100, i * 10 + n);
          assertReply(
            await client.roundTrip(loopback(echo.port), payload),
            loopback(echo.port),
            payload,
          );
        }
      }
      const stats = server.udpStats!;
      assert.deepEqual(Object.keys(stats.users), ["alice", "bob", "carol"]);
      for (const [i, user] of users.entries()) {
        assert.deepEqual({ ...stats.users[user.name] }, {
          sessions: 1,
          datagramsRelayed: i + 1,
          repliesRelayed: i + 1,
          bytesUplink: 100 * (i + 1),
          bytesDownlink: 100 * (i + 1),
        });
      }
      // A key the server does not know names no user: dropped, never answered.
      await stranger.send(loopback(echo.port), Uint8Array.of(1));
      await waitUntil(() => stats.statuses.ERR_CIPHER === 1);
      assert.ok(await stranger.peer.silentFor(100));
      assert.equal(echo.echoed, 6);
      assert.equal(stats.associations, 3);
    } finally {
      await stranger.close();
      await Promise.all(clients.map((client) => client.close()));
      await Promise.all(locals.map((local) => local.close()));
      await server.close();
      await echo.close();
    }
  });
}

for (const method of METHODS_2022) {
  Deno.test(`a replayed packet is dropped as ERR_REPLAY and reaches the target once with ${method}`, async () => {
    const echo = new UdpEcho();
    const key = keyFor(method);
    const server = await startServer2022(method, key);
    const client = new Shadowsocks2022UdpClient(method, key, server.addr.port);
    const attacker = new UdpPeer();
    try {
      const stats = server.udpStats!;
      const payload = datagramBytes(64, 1);
      const captured = client.seal(loopback(echo.port), payload);
      await client.sendRaw(captured);
      assertReply(await client.next(), loopback(echo.port), payload);
      // The same bytes again, from the client's port and from another one.
      await client.sendRaw(captured);
      await client.sendRaw(captured, attacker);
      await waitUntil(() => stats.statuses.ERR_REPLAY === 2);
      assert.ok(await client.peer.silentFor(100));
      assert.equal(attacker.pending, 0);
      assert.equal(echo.echoed, 1);
      // The replay from elsewhere did not move the session: replies still come to the client.
      const next = datagramBytes(64, 2);
      await client.send(loopback(echo.port), next);
      const reply = await client.next();
      assertReply(reply, loopback(echo.port), next);
      assert.equal(reply.packetId, 1n);
      assert.equal(stats.statuses.OK, 2);
      assert.equal(stats.associationsOpened, 1);
    } finally {
      await attacker.close();
      await client.close();
      await server.close();
      await echo.close();
    }
  });
}

Deno.test("a packet ID far behind the window is dropped, one inside it is accepted once", async () => {
  const method = "2022-blake3-aes-256-gcm";
  const echo = new UdpEcho();
  const key = keyFor(method);
  const server = await startServer2022(method, key);
  const client = new Shadowsocks2022UdpClient(method, key, server.addr.port);
  try {
    const stats = server.udpStats!;
    const target = loopback(echo.port);
    client.nextPacketId = 10_000n;
    await client.send(target, Uint8Array.of(1));
    assert.deepEqual((await client.next()).payload, Uint8Array.of(1));
    // The window holds 8128 IDs behind the highest one; 1871 and 0 are further back.
    for (const packetId of [1871n, 0n]) {
      await client.sendRaw(client.seal(target, Uint8Array.of(2), { packetId }));
    }
    await waitUntil(() => stats.statuses.ERR_REPLAY === 2);
    // An ID inside the window that was never seen is late, not replayed: accepted once.
    const late = client.seal(target, Uint8Array.of(3), { packetId: 1872n });
    await client.sendRaw(late);
    assert.deepEqual((await client.next()).payload, Uint8Array.of(3));
    await client.sendRaw(late);
    await waitUntil(() => stats.statuses.ERR_REPLAY === 3);
    assert.ok(await client.peer.silentFor(100));
    assert.equal(echo.echoed, 2);
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("a timestamp 31 s off is dropped with the clock skew logged; 29 s passes", async () => {
  const method = "2022-blake3-chacha20-poly1305";
  const echo = new UdpEcho();
  const key = keyFor(method);
  const lines: string[] = [];
  const server = await startServer2022(method, key, { lines });
  const client = new Shadowsocks2022UdpClient(method, key, server.addr.port);
  try {
    const stats = server.udpStats!;
    const target = loopback(echo.port);
    // Half a second extra keeps the whole-second skew at 31 or 32 even across a tick.
    const ahead = () => Date.now() + 31_500;
    await client.sendRaw(client.seal(target, Uint8Array.of(1), { now: ahead }));
    await client.sendRaw(client.seal(target, Uint8Array.of(2), { now: () => Date.now() - 31_000 }));
    await waitUntil(() => stats.statuses.ERR_REPLAY === 2);
    assert.ok(await client.peer.silentFor(100));
    assert.equal(echo.echoed, 0);
    assert.ok(
      lines.some((line) => / INFO .*clock skew of 3[12] s/.test(line)),
      `no skew line in ${JSON.stringify(lines)}`,
    );
    // A clock 29 s off is within the tolerance.
    await client.sendRaw(client.seal(target, Uint8Array.of(3), { now: () => Date.now() + 29_000 }));
    assert.deepEqual((await client.next()).payload, Uint8Array.of(3));
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

for (const method of METHODS_2022) {
  Deno.test(`a session that moves to a new source port gets its replies there with ${method}`, async () => {
    const echo = new UdpEcho({ reportSource: true });
    const key = keyFor(method);
    const server = await startServer2022(method, key);
    const client = new Shadowsocks2022UdpClient(method, key, server.addr.port);
    const moved = new UdpPeer();
    try {
      const target = loopback(echo.port);
      await client.send(target, Uint8Array.of(1));
      const before = await client.next();
      // Same session, next packet ID, new source port (a NAT rebinding, a roaming phone).
      await client.sendRaw(client.seal(target, Uint8Array.of(2)), moved);
      const after = await client.next(3000, moved);
      assert.deepEqual(after.payload, before.payload, "the session kept its outbound socket");
      assert.equal(after.sessionId, before.sessionId);
      assert.equal(after.packetId, before.packetId + 1n);
      assert.ok(await client.peer.silentFor(100));
      const stats = server.udpStats!;
      assert.equal(stats.associations, 1);
      assert.equal(stats.associationsOpened, 1);
    } finally {
      await moved.close();
      await client.close();
      await server.close();
      await echo.close();
    }
  });
}

Deno.test("UDP modes refuse a 2022 key of the wrong size before binding anything", async () => {
  const method = "2022-blake3-aes-256-gcm";
  const short = keyFor("2022-blake3-aes-128-gcm");
  await assert.rejects(
    () => startServer(serverConfig(method, { ...SERVER, password: short })),
    InvalidPskError,
  );
  await assert.rejects(
    () => startLocal(localConfig(method, 9, { mode: "udp_only", password: short })),
    InvalidPskError,
  );
  await assert.rejects(
    () =>
      startTunnel({
        ...localConfig(method, 9, { mode: "udp_only", password: "not base64!" }),
        tunnelHost: "127.0.0.1",
        tunnelPort: 9,
      }),
    InvalidPskError,
  );
});
