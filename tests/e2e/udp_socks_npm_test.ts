/**
 * A widely used SOCKS client, the npm `socks` package, performs UDP ASSOCIATE against our local
 * and relays datagrams built with its own frame codec (`createUDPFrame` / `parseUDPFrame`)
 * through a `node:dgram` socket:
 *
 * ```
 *   socks + node:dgram ─▶ ssdeno local ══▶ ssdeno server ─▶ UDP echo
 * ```
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import type { Socket } from "node:net";
import { SocksClient, type SocksRemoteHost } from "socks";
import { AEAD_METHODS, startChain } from "./_harness.ts";
import { datagramBytes, UdpEcho } from "./_udp_harness.ts";

const UDP = { mode: "tcp_and_udp" } as const;

/** Resolves with the next message on `socket`, or rejects after `timeoutMs`. */
function nextMessage(socket: dgram.Socket, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off("message", onMessage);
      reject(new Error(`No datagram within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: Buffer) => {
      clearTimeout(timer);
      resolve(message);
    };
    socket.once("message", onMessage);
  });
}

for (const method of AEAD_METHODS) {
  Deno.test(`the npm socks client relays UDP through ssdeno local with ${method}`, async () => {
    const echo = new UdpEcho();
    const chain = await startChain(method, { server: UDP, local: UDP });
    const udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
    let control: Socket | undefined;
    try {
      // ASSOCIATE is only offered through an instance and its "established" event.
      const client = new SocksClient({
        proxy: { host: "127.0.0.1", port: chain.local.addr.port, type: 5 },
        command: "associate",
        destination: { host: "0.0.0.0", port: udp.address().port },
      });
      const established = await new Promise<{ socket: Socket; remoteHost?: SocksRemoteHost }>(
        (resolve, reject) => {
          client.once("established", resolve);
          client.once("error", reject);
          client.connect();
        },
      );
      control = established.socket;
      const relay = established.remoteHost!;
      assert.equal(relay.host, "127.0.0.1");
      for (const [index, size] of [1, 1000, 30_000].entries()) {
        const payload = Buffer.from(datagramBytes(size, index));
        const frame = SocksClient.createUDPFrame({
          remoteHost: { host: "127.0.0.1", port: echo.port },
          data: payload,
        });
        const reply = nextMessage(udp);
        udp.send(frame, relay.port, relay.host);
        const parsed = SocksClient.parseUDPFrame(await reply);
        assert.equal(parsed.remoteHost.host, "127.0.0.1");
        assert.equal(parsed.remoteHost.port, echo.port);
        assert.ok(parsed.data.equals(payload), `payload of ${size} bytes differs`);
      }
      assert.equal(chain.local.udpStats?.repliesRelayed, 3);
    } finally {
      if (control) {
        const closed = new Promise((resolve) => control!.once("close", resolve));
        control.destroy();
        await closed;
      }
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await chain.close();
      await echo.close();
    }
  });
}
