/**
 * UDP end to end on loopback, port 0:
 *
 * ```
 *   SOCKS5 UDP client ─▶ ssdeno local ══▶ ssdeno server ─▶ UDP echo
 *   UDP/TCP client ─▶ ssdeno tunnel ══▶ ssdeno server ─▶ UDP/TCP echo
 * ```
 */
import assert from "node:assert/strict";
import type { TunnelConfig } from "../../config/types.ts";
import type { Address } from "../../protocol/address.ts";
import { Reply } from "../../protocol/socks5.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { processQuarantine } from "../../relay/port_quarantine.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { startServer } from "../../server.ts";
import { startTunnel } from "../../tunnel.ts";
import { waitUntil } from "../_fixtures.ts";
import {
  AEAD_METHODS,
  localConfig,
  serverConfig,
  socksConnect,
  startChain,
  startEchoServer,
} from "./_harness.ts";
import {
  datagramBytes,
  loopback,
  ShadowsocksUdpClient,
  socksRequest,
  SocksUdpClient,
  UdpEcho,
  UdpPeer,
} from "./_udp_harness.ts";

const UDP = { mode: "tcp_and_udp" } as const;
/** Payload sizes every method carries, up to a 60 000-byte datagram. */
const SIZES = [0, 1, 100, 1400, 8192, 60_000];

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

for (const method of [...AEAD_METHODS, "none"]) {
  Deno.test(`SOCKS5 UDP through local and server echoes every byte with ${method}`, async () => {
    const echo = new UdpEcho();
    const chain = await startChain(method, { server: UDP, local: UDP });
    const client = await SocksUdpClient.open(chain.local.addr.port);
    try {
      assert.equal(chain.server.udpAddr?.port, chain.server.addr.port);
      for (const [index, size] of SIZES.entries()) {
        const payload = datagramBytes(size, index);
        assertReply(
          await client.roundTrip(loopback(echo.port), payload),
          loopback(echo.port),
          payload,
        );
      }
      // A name: the server resolves it; the reply carries the address that answered.
      const named = datagramBytes(300, 99);
      const reply = await client.roundTrip(
        { type: "domain", host: "localhost", port: echo.port },
        named,
      );
      assertReply(reply, loopback(echo.port), named);
      assert.equal(chain.server.udpStats?.statuses.OK, SIZES.length + 1);
      assert.equal(chain.local.udpStats?.repliesRelayed, SIZES.length + 1);
    } finally {
      await client.close();
      await chain.close();
      await echo.close();
    }
  });
}

Deno.test("many SOCKS5 UDP associations at once each get their own echoes", async () => {
  const echo = new UdpEcho();
  const chain = await startChain("aes-128-gcm", { server: UDP, local: UDP });
  const clients = await Promise.all(
    Array.from({ length: 40 }, () => SocksUdpClient.open(chain.local.addr.port)),
  );
  try {
    await Promise.all(clients.map(async (client, c) => {
      for (let i = 0; i < 5; i++) {
        const payload = datagramBytes(64 + c, c * 100 + i);
        assertReply(
          await client.roundTrip(loopback(echo.port), payload),
          loopback(echo.port),
          payload,
        );
      }
    }));
    assert.equal(chain.local.udpStats?.associations, 40);
    assert.equal(chain.server.udpStats?.associations, 40);
    assert.equal(chain.server.udpStats?.statuses.OK, 200);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await chain.close();
    await echo.close();
  }
});

Deno.test("the local ends an association when its control connection closes", async () => {
  const echo = new UdpEcho();
  const chain = await startChain("chacha20-ietf-poly1305", { server: UDP, local: UDP });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  try {
    await client.roundTrip(loopback(echo.port), Uint8Array.of(1));
    assert.equal(chain.local.udpStats?.associations, 1);
    client.control.close();
    await waitUntil(() => chain.local.udpStats?.associations === 0);
    assert.equal(chain.local.stats.statuses.OK, 1);
    // Its port is held out of new sockets for a while (relay/port_quarantine.ts).
    assert.ok(processQuarantine.has(client.relay.port), `port ${client.relay.port} quarantined`);
    // The relay socket is gone: a datagram to it gets nothing back.
    await client.send(loopback(echo.port), Uint8Array.of(2));
    assert.ok(await client.peer.silentFor(200));
  } finally {
    await client.close();
    await chain.close();
    await echo.close();
  }
});

Deno.test("the local drops fragments and datagrams from other ports, never answering", async () => {
  const echo = new UdpEcho();
  const chain = await startChain("aes-256-gcm", { server: UDP, local: UDP });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  const stranger = new UdpPeer();
  try {
    await client.send(loopback(echo.port), Uint8Array.of(1, 2, 3), 0x81);
    assert.ok(await client.peer.silentFor(150));
    assert.equal(chain.local.udpStats?.fragmentsDropped, 1);
    // Same IP, other port: the association was announced for the client's own port.
    await stranger.send(Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 1, 0, 7, 42), client.relay.port);
    await waitUntil(() => chain.local.udpStats?.foreignDropped === 1);
    // A bad header from the right port: dropped as ERR_READ_ADDRESS.
    await client.peer.send(Uint8Array.of(0, 0, 0, 9, 1), client.relay.port);
    await waitUntil(() => chain.local.udpStats?.statuses.ERR_READ_ADDRESS === 1);
    const payload = datagramBytes(10, 1);
    assertReply(await client.roundTrip(loopback(echo.port), payload), loopback(echo.port), payload);
    assert.ok(await stranger.silentFor(100));
    assert.equal(echo.echoed, 1);
  } finally {
    await stranger.close();
    await client.close();
    await chain.close();
    await echo.close();
  }
});

Deno.test("a client that announces port 0 is pinned to the port of its first datagram", async () => {
  const echo = new UdpEcho();
  const chain = await startChain("aes-128-gcm", { server: UDP, local: UDP });
  const client = await SocksUdpClient.open(chain.local.addr.port, { announcePort: false });
  const stranger = new UdpPeer();
  try {
    const payload = datagramBytes(20, 2);
    assertReply(await client.roundTrip(loopback(echo.port), payload), loopback(echo.port), payload);
    await stranger.send(Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 1, 0, 7, 42), client.relay.port);
    await waitUntil(() => chain.local.udpStats?.foreignDropped === 1);
    assert.equal(echo.echoed, 1);
  } finally {
    await stranger.close();
    await client.close();
    await chain.close();
    await echo.close();
  }
});

Deno.test("UDP ASSOCIATE gets REP 0x07 in tcp_only and CONNECT gets it in udp_only", async () => {
  const tcpOnly = await startChain("aes-128-gcm");
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: tcpOnly.local.addr.port });
    try {
      const reply = await socksRequest(conn, 0x03, loopback(0));
      assert.equal(reply.rep, Reply.commandNotSupported);
    } finally {
      conn.close();
    }
  } finally {
    await tcpOnly.close();
  }
  const udpOnly = await startChain("aes-128-gcm", {
    server: { mode: "udp_only" },
    local: { mode: "udp_only" },
  });
  try {
    const { conn, reply } = await socksConnect(udpOnly.local.addr.port, loopback(9));
    conn.close();
    assert.equal(reply, Reply.commandNotSupported);
  } finally {
    await udpOnly.close();
  }
});

Deno.test("a udp_only server relays UDP and does not listen on TCP", async () => {
  const echo = new UdpEcho();
  const server = await startServer(serverConfig("aes-256-gcm", { mode: "udp_only" }), {
    graceMs: 0,
  });
  const client = new ShadowsocksUdpClient("aes-256-gcm", "e2e-password", server.addr.port);
  try {
    assert.equal(server.addr.port, server.udpAddr?.port);
    const payload = datagramBytes(500, 3);
    await client.send(loopback(echo.port), payload);
    assertReply(await client.next(), loopback(echo.port), payload);
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("the server refuses private UDP targets unless allowed, without answering", async () => {
  const echo = new UdpEcho();
  const server = await startServer(
    serverConfig("aes-128-gcm", { mode: "udp_only", allowPrivateTargets: false }),
    { graceMs: 0 },
  );
  const client = new ShadowsocksUdpClient("aes-128-gcm", "e2e-password", server.addr.port);
  try {
    await client.send(loopback(echo.port), Uint8Array.of(1));
    await client.send({ type: "ipv6", host: "::1", port: echo.port }, Uint8Array.of(2));
    await client.send({ type: "ipv4", host: "10.1.2.3", port: 53 }, Uint8Array.of(3));
    await waitUntil(() => server.udpStats?.statuses.ERR_TARGET_FORBIDDEN === 3);
    assert.ok(await client.peer.silentFor(100));
    assert.equal(echo.echoed, 0);
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("the server NAT table evicts the least recently used association at capacity", async () => {
  const echo = new UdpEcho({ reportSource: true });
  const server = await startServer(
    serverConfig("aes-128-gcm", { mode: "udp_only", udpMaxAssociations: 4 }),
    { graceMs: 0 },
  );
  const clients = Array.from(
    { length: 5 },
    () => new ShadowsocksUdpClient("aes-128-gcm", "e2e-password", server.addr.port),
  );
  /** The server's outbound port for `client`, as the echo saw it. */
  const outboundPort = async (client: ShadowsocksUdpClient) => {
    await client.send(loopback(echo.port), Uint8Array.of(0));
    const { payload } = await client.next();
    return (payload[0]! << 8) | payload[1]!;
  };
  try {
    const [a, b, c, d, e] = clients as [
      ShadowsocksUdpClient,
      ShadowsocksUdpClient,
      ShadowsocksUdpClient,
      ShadowsocksUdpClient,
      ShadowsocksUdpClient,
    ];
    const first = [await outboundPort(a), await outboundPort(b), await outboundPort(c)];
    const portD = await outboundPort(d);
    assert.equal(server.udpStats?.associations, 4);
    await outboundPort(e); // table full: a, the oldest, goes
    assert.equal(server.udpStats?.associations, 4);
    assert.equal(server.udpStats?.associationsEvicted, 1);
    const aAgain = await outboundPort(a); // a comes back with a new socket; b goes
    assert.notEqual(aAgain, first[0]);
    assert.equal(await outboundPort(c), first[2]); // c survived both evictions
    assert.equal(await outboundPort(d), portD);
    assert.equal(server.udpStats?.associationsEvicted, 2);
    assert.equal(server.udpStats?.associations, 4);
    assert.equal(server.udpStats?.associationsOpened, 6);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
    await echo.close();
  }
});

Deno.test("idle associations expire on both sides after udp_timeout", async () => {
  const echo = new UdpEcho();
  const tiny = { ...UDP, udpTimeout: 0.2 };
  const chain = await startChain("aes-128-gcm", { server: tiny, local: tiny });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  try {
    await client.roundTrip(loopback(echo.port), Uint8Array.of(7));
    assert.equal(chain.server.udpStats?.associations, 1);
    await waitUntil(() =>
      chain.server.udpStats?.associationsExpired === 1 &&
      chain.local.udpStats?.associationsExpired === 1
    );
    assert.equal(chain.server.udpStats?.associations, 0);
    assert.equal(chain.local.udpStats?.associations, 0);
    // The local closed the control connection with the association.
    assert.equal(await client.control.read(new Uint8Array(1)), null);
    await waitUntil(() => chain.local.stats.statuses.ERR_TIMEOUT === 1);
  } finally {
    await client.close();
    await chain.close();
    await echo.close();
  }
});

for (const method of AEAD_METHODS) {
  Deno.test(`the tunnel forwards TCP and UDP to its fixed target with ${method}`, async () => {
    const tcpEcho = startEchoServer();
    const udpEcho = new UdpEcho({ port: tcpEcho.port });
    const server = await startServer(serverConfig(method, UDP), { graceMs: 0 });
    const config: TunnelConfig = {
      ...localConfig(method, server.addr.port, UDP),
      tunnelHost: "127.0.0.1",
      tunnelPort: tcpEcho.port,
    };
    const tunnel = await startTunnel(config, { graceMs: 0 });
    const peers = [new UdpPeer(), new UdpPeer()];
    try {
      assert.equal(tunnel.udpAddr?.port, tunnel.addr.port);
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
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.addr.port });
      try {
        const payload = datagramBytes(100_000, 5);
        const [, echoed] = await Promise.all([
          writeAll(conn, payload),
          readExact(conn, new Uint8Array(payload.length)),
        ]);
        assert.deepEqual(echoed, payload);
      } finally {
        conn.close();
      }
    } finally {
      await Promise.all(peers.map((peer) => peer.close()));
      await tunnel.close();
      await server.close();
      await udpEcho.close();
      await tcpEcho.close();
    }
  });
}

Deno.test("a udp_only tunnel relays UDP and does not listen on TCP", async () => {
  const echo = new UdpEcho();
  const server = await startServer(serverConfig("aes-128-gcm", UDP), { graceMs: 0 });
  const tunnel = await startTunnel({
    ...localConfig("aes-128-gcm", server.addr.port, { mode: "udp_only" }),
    tunnelHost: "localhost",
    tunnelPort: echo.port,
  }, { graceMs: 0 });
  const peer = new UdpPeer();
  try {
    await peer.send(Uint8Array.of(1, 2, 3), tunnel.addr.port);
    assert.deepEqual((await peer.next()).data, Uint8Array.of(1, 2, 3));
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: tunnel.addr.port }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    await peer.close();
    await tunnel.close();
    await server.close();
    await echo.close();
  }
});

/** A bound UDP socket whose port number is free for TCP too (bounded retries). */
function udpPortFreeForTcp(): UdpSocket {
  for (let attempt = 0; attempt < 20; attempt++) {
    const socket = UdpSocket.bind("127.0.0.1", 0);
    try {
      Deno.listen({ hostname: "127.0.0.1", port: socket.addr.port }).close();
      return socket;
    } catch (error) {
      socket.close();
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("No UDP port whose TCP number was free in 20 tries");
}

Deno.test("a server whose UDP port is taken fails to start and leaves no TCP listener", async () => {
  // The TCP number must be free, or TCP's bind would fail first and prove nothing.
  using taken = udpPortFreeForTcp();
  await assert.rejects(
    startServer(serverConfig("aes-128-gcm", { ...UDP, port: taken.addr.port }), { graceMs: 0 }),
    Deno.errors.AddrInUse,
  );
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: taken.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("SOCKS5 UDP works end to end over IPv6 loopback", async () => {
  const echo = new UdpEcho({ hostname: "::1" });
  const v6 = { ...UDP, address: "::1" };
  const chain = await startChain("aes-256-gcm", {
    server: v6,
    local: { ...UDP, server: "::1", localAddress: "::1" },
  });
  const client = await SocksUdpClient.open(chain.local.addr.port, { hostname: "::1" });
  try {
    assert.equal(client.relay.hostname, "::1");
    const target: Address = { type: "ipv6", host: "::1", port: echo.port };
    const payload = datagramBytes(1000, 6);
    assertReply(await client.roundTrip(target, payload), target, payload);
  } finally {
    await client.close();
    await chain.close();
    await echo.close();
  }
});
