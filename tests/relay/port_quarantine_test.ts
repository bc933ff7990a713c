/**
 * relay/port_quarantine.ts: released ports stay out of new sockets for the quarantine time, the
 * memory is bounded, a bind that lands on one is retried (the refused sockets closed), and the
 * UDP relay holds the ports of the associations it removes.
 */
import assert from "node:assert/strict";
import { findMethod } from "../../crypto/methods.ts";
import { serveDatagrams } from "../../relay/datagram_service.ts";
import { silentLogger } from "../../relay/log.ts";
import { bindOutside, PortQuarantine } from "../../relay/port_quarantine.ts";
import { createServerUdpCodec } from "../../relay/shadowsocks_udp.ts";
import {
  type AssociationLink,
  DirectPath,
  SocksUdpAssociation,
} from "../../relay/socks_udp_associate.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { createUdpStats } from "../../relay/udp_stats.ts";
import { loopback, ShadowsocksUdpClient, UdpEcho } from "../e2e/_udp_harness.ts";

const METHOD = "aes-256-gcm";
const PASSWORD = "quarantine-test";

Deno.test("port quarantine: a port is held for the quarantine time, then released", () => {
  let now = 1000;
  const quarantine = new PortQuarantine({ ms: 30_000, now: () => now });
  quarantine.add(40000);
  now += 10_000;
  quarantine.add(40001);
  assert.ok(quarantine.has(40000));
  assert.ok(quarantine.has(40001));
  assert.ok(!quarantine.has(40002));
  now += 20_000; // 30 s after the first
  assert.ok(!quarantine.has(40000), "held 30 s only");
  assert.ok(quarantine.has(40001));
  // Released again: held anew from now.
  quarantine.add(40001);
  now += 15_000;
  assert.ok(quarantine.has(40001));
  assert.equal(quarantine.size, 1);
});

Deno.test("port quarantine: the oldest port leaves first past the bound", () => {
  const quarantine = new PortQuarantine({ max: 3, now: () => 0 });
  for (const port of [1, 2, 3, 4]) quarantine.add(port);
  assert.equal(quarantine.size, 3);
  assert.ok(!quarantine.has(1));
  assert.ok(quarantine.has(2) && quarantine.has(3) && quarantine.has(4));
});

/** A stand-in socket: its port, and whether it was closed. */
function fakeSocket(port: number) {
  return {
    addr: { transport: "udp", hostname: "0.0.0.0", port } as Deno.NetAddr,
    closed: false,
    close() {
      this.closed = true;
    },
  };
}

Deno.test("port quarantine: a bind on a held port is retried; the refused sockets are closed", () => {
  const quarantine = new PortQuarantine({ now: () => 0 });
  quarantine.add(5000);
  quarantine.add(5001);
  const made = [5000, 5001, 5002, 5003].map(fakeSocket);
  let next = 0;
  const socket = bindOutside(() => made[next++]!, quarantine);
  assert.equal(socket.addr.port, 5002);
  assert.deepEqual(made.map((s) => s.closed), [true, true, false, false]);
  assert.equal(next, 3, "no bind after a free port");
});

Deno.test("port quarantine: after the last attempt the socket is kept as it is", () => {
  const quarantine = new PortQuarantine({ now: () => 0 });
  for (const port of [1, 2, 3, 4]) quarantine.add(port);
  const made = [1, 2, 3, 4].map(fakeSocket);
  let next = 0;
  const socket = bindOutside(() => made[next++]!, quarantine, 4);
  assert.equal(socket.addr.port, 4);
  assert.deepEqual(made.map((s) => s.closed), [true, true, true, false]);
});

Deno.test("port quarantine: a bind that fails after a refusal keeps the refused socket", () => {
  const quarantine = new PortQuarantine({ now: () => 0 });
  quarantine.add(7000);
  const first = fakeSocket(7000);
  let calls = 0;
  const socket = bindOutside(() => {
    if (calls++ === 0) return first;
    throw new Deno.errors.AddrInUse("no descriptors");
  }, quarantine);
  assert.equal(socket, first);
  assert.equal(first.closed, false);
  // With nothing refused yet, the failure is the caller's.
  assert.throws(
    () =>
      bindOutside(() => {
        throw new Deno.errors.AddrInUse("no descriptors");
      }, quarantine),
    Deno.errors.AddrInUse,
  );
});

/** A quarantine that notes every port it is asked about. */
class AskedQuarantine extends PortQuarantine {
  readonly asked: number[] = [];
  override has(port: number): boolean {
    this.asked.push(port);
    return super.has(port);
  }
}

Deno.test("port quarantine: the UDP relay holds an evicted association's port and checks new ones", async () => {
  const echo = new UdpEcho();
  const quarantine = new AskedQuarantine();
  const inbound = UdpSocket.bind("127.0.0.1", 0);
  const service = serveDatagrams(inbound, createServerUdpCodec(findMethod(METHOD)!, PASSWORD), {
    name: "quarantine",
    logger: silentLogger,
    maxAssociations: 1,
    idleTimeoutMs: 60_000,
    allowPrivateTargets: true,
    ipv6First: false,
    quarantine,
  });
  const first = new ShadowsocksUdpClient(METHOD, PASSWORD, service.addr.port);
  const second = new ShadowsocksUdpClient(METHOD, PASSWORD, service.addr.port);
  try {
    await first.send(loopback(echo.port), Uint8Array.of(1));
    await first.next();
    const firstPort = echo.sources[0]!;
    assert.ok(quarantine.asked.includes(firstPort), "the first association's port was checked");
    assert.ok(!quarantine.has(firstPort));
    // A second client in a table of one evicts the first: its port is held from then on.
    await second.send(loopback(echo.port), Uint8Array.of(2));
    await second.next();
    assert.equal(service.stats.associationsEvicted, 1);
    assert.ok(quarantine.has(firstPort), `port ${firstPort} of the evicted association is held`);
    const secondPort = echo.sources[1]!;
    assert.notEqual(secondPort, firstPort);
    assert.ok(quarantine.asked.includes(secondPort), "the second association's port was checked");
  } finally {
    await first.close();
    await second.close();
    await service.close();
    await echo.close();
  }
});

Deno.test("port quarantine: a SOCKS5 UDP association holds the ports of its sockets when it closes", () => {
  const quarantine = new PortQuarantine();
  const sockets = [UdpSocket.bind("127.0.0.1", 0), UdpSocket.bind("127.0.0.1", 0)];
  let controlClosed = 0;
  const association = new SocksUdpAssociation(
    [...sockets, { close: () => controlClosed++ }],
    quarantine,
  );
  const direct = UdpSocket.bind("127.0.0.1", 0);
  association.add(direct);
  const ports = [...sockets, direct].map((socket) => socket.addr.port);
  assert.ok(ports.every((port) => !quarantine.has(port)));
  association.close();
  for (const port of ports) assert.ok(quarantine.has(port), `port ${port} held`);
  assert.equal(controlClosed, 1);
  // A second close (the table, then the session) changes nothing.
  association.close();
  assert.equal(controlClosed, 1);
  assert.ok(sockets.every((socket) => socket.closed) && direct.closed, "every socket closed");
  // A socket added after the close is closed and held at once.
  const late = UdpSocket.bind("127.0.0.1", 0);
  association.add(late);
  assert.ok(late.closed);
  assert.ok(quarantine.has(late.addr.port));
});

Deno.test("port quarantine: a direct datagram that outlives its SOCKS5 association opens no socket", async () => {
  const quarantine = new AskedQuarantine();
  const association = new SocksUdpAssociation([], quarantine);
  const direct = new DirectPath(association, quarantine);
  const stats = createUdpStats();
  const link = { context: { stats, logger: silentLogger } } as unknown as AssociationLink;
  // The association ends while the datagram waits for its route (the app left, the table evicted).
  association.close();
  await direct.send(link, { type: "ipv4", host: "127.0.0.1", port: 9 }, Uint8Array.of(1));
  assert.deepEqual(quarantine.asked, [], "no socket was bound");
  assert.equal(stats.statuses.OK, 0);
  assert.equal(stats.statuses.ERR_RELAY_TARGET, 0, "not counted as a failed send");
  await direct.done();
});
