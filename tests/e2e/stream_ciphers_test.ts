/**
 * The legacy stream ciphers and the AEAD extras end to end on loopback, port 0:
 *
 * ```
 *   app ─SOCKS5 TCP─▶ ssdeno local ══▶ ssdeno server ─▶ TCP echo
 *   app ─SOCKS5 UDP─▶ ssdeno local ══▶ ssdeno server ─▶ UDP echo
 * ```
 *
 * Plus, on the server alone: a recorded first flight replayed (`ERR_REPLAY`, drained without a
 * byte), and `table`, which has no IV and so takes the same flight twice.
 */
import assert from "node:assert/strict";
import { deriveMasterKey } from "../../crypto/kdf.ts";
import { methodUnavailableReason } from "../../crypto/method_support.ts";
import { findMethod, METHOD_NAMES } from "../../crypto/methods.ts";
import { Reply } from "../../protocol/socks5.ts";
import { streamClientFraming } from "../../protocol/stream_framing_legacy.ts";
import { startServer } from "../../server.ts";
import { waitUntil } from "../_fixtures.ts";
import {
  echoThrough,
  localhostTarget,
  probe,
  serverConfig,
  socksConnect,
  startChain,
  startEchoServer,
} from "./_harness.ts";
import { datagramBytes, loopback, SocksUdpClient, UdpEcho } from "./_udp_harness.ts";

const UDP = { mode: "tcp_and_udp", udpMaxAssociations: 64 } as const;
const METHODS = [
  ...METHOD_NAMES.filter((name) => findMethod(name)!.family === "stream"),
  "aes-192-gcm",
  "xchacha20-ietf-poly1305",
];
const UDP_SIZES = [0, 1, 1400, 8192];
const TCP_BYTES = 512 * 1024;

for (const [index, method] of METHODS.entries()) {
  const reason = methodUnavailableReason(findMethod(method)!);
  Deno.test({
    name: `TCP and UDP through the ssdeno local and server with ${method}`,
    ignore: reason !== undefined,
    async fn() {
      const echo = startEchoServer();
      const udpEcho = new UdpEcho();
      const chain = await startChain(method, { server: UDP, local: UDP });
      const client = await SocksUdpClient.open(chain.local.addr.port);
      try {
        const { conn, reply } = await socksConnect(
          chain.local.addr.port,
          localhostTarget(echo.port),
        );
        assert.equal(reply, Reply.succeeded);
        await echoThrough(conn, TCP_BYTES, 0x5eed + index);
        await waitUntil(() => chain.server.stats.statuses.OK === 1);
        assert.equal(chain.server.stats.bytesUplink, TCP_BYTES);
        assert.equal(chain.server.stats.bytesDownlink, TCP_BYTES);
        for (const [i, size] of UDP_SIZES.entries()) {
          const payload = datagramBytes(size, i);
          const echoed = await client.roundTrip(loopback(udpEcho.port), payload);
          assert.deepEqual(echoed.address, loopback(udpEcho.port));
          assert.deepEqual(echoed.payload, payload);
        }
        assert.equal(chain.server.udpStats?.statuses.OK, UDP_SIZES.length);
      } finally {
        await client.close();
        await chain.close();
        await echo.close();
        await udpEcho.close();
      }
    },
  });
  if (reason !== undefined) console.log(`skipped ${method}: ${reason}`);
}

Deno.test("the server drains a replayed stream-cipher first flight and counts ERR_REPLAY", async () => {
  const method = findMethod("aes-256-cfb")!;
  if (methodUnavailableReason(method) !== undefined) return;
  const echo = startEchoServer();
  const server = await startServer(serverConfig(method.name, { handshakeTimeout: 2 }), {
    graceMs: 0,
  });
  try {
    const key = deriveMasterKey(method, "e2e-password");
    const flight = streamClientFraming(method, key, localhostTarget(echo.port)).seal(
      new TextEncoder().encode("hello"),
    );
    const first = await probe(server.addr.port, flight);
    assert.ok(first.answer >= method.saltSize + 5, `answer of ${first.answer} bytes`);
    const replayed = await probe(server.addr.port, flight);
    assert.deepEqual(replayed, { closedEarly: false, answer: 0 });
    await waitUntil(() => server.stats.statuses.ERR_REPLAY === 1);
    assert.equal(server.stats.statuses.OK, 1);
  } finally {
    await server.close();
    await echo.close();
  }
});

Deno.test("a table server takes the same first flight twice: it has no IV to remember", async () => {
  const echo = startEchoServer();
  const method = findMethod("table")!;
  const server = await startServer(serverConfig(method.name), { graceMs: 0 });
  try {
    const key = deriveMasterKey(method, "e2e-password");
    const flight = streamClientFraming(method, key, localhostTarget(echo.port)).seal(
      new TextEncoder().encode("hello"),
    );
    for (let i = 0; i < 2; i++) {
      const result = await probe(server.addr.port, flight);
      assert.equal(result.answer, 5);
    }
    await waitUntil(() => server.stats.statuses.OK === 2);
    assert.equal(server.replaySize(), 0);
  } finally {
    await server.close();
    await echo.close();
  }
});
