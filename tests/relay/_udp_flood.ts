/**
 * A UDP flood for tests/relay/udp_eviction_test.ts, run as a child process so that its sends
 * do not let the server's event loop turn: `deno run --allow-net --unstable-net
 * tests/relay/_udp_flood.ts SERVER_PORT TARGET_PORT COUNT` sends COUNT valid AEAD-2017
 * datagrams (aes-256-gcm, password "e2e-password", to 127.0.0.1:TARGET_PORT), each from a new
 * source port on 127.0.0.1, as fast as it can, then prints how many it sent.
 */
import { evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod } from "../../crypto/methods.ts";
import { addressFromHost } from "../../protocol/address.ts";
import { encodeUdpPlaintext, sealUdpPacket } from "../../protocol/udp_packet.ts";

const [serverPort, targetPort, count] = Deno.args.map(Number);
if (!serverPort || !targetPort || !count) {
  console.error("usage: _udp_flood.ts SERVER_PORT TARGET_PORT COUNT");
  Deno.exit(2);
}
const method = findMethod("aes-256-gcm")!;
const key = evpBytesToKey("e2e-password", method.keySize);
const plaintext = encodeUdpPlaintext(addressFromHost("127.0.0.1", targetPort), Uint8Array.of(1));
for (let i = 0; i < count; i++) {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await socket.send(sealUdpPacket(method, key, plaintext), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: serverPort,
    });
  } finally {
    socket.close();
  }
}
console.log(`sent ${count}`);
