/**
 * Shadowsocks UDP seen from `serveDatagrams`: codecs that hide salts, nonces and tags from the
 * datagram relay, the way `ShadowsocksStream` does for TCP.
 *
 * - server: client packets are opened to (target, payload); replies from a target are sealed
 *   with the reply's source address.
 * - tunnel (client side): plain datagrams from applications are sealed with the fixed target
 *   and sent to the server; the server's packets are opened and their payload passed on.
 * @module
 */
import type { MethodInfo } from "../crypto/methods.ts";
import {
  type Address,
  addressFromHost,
  encodeAddress,
  encodedAddressLength,
} from "../protocol/address.ts";
import { decodeUdpPlaintext, openUdpPacket, sealUdpPacket } from "../protocol/udp_packet.ts";
import type { DatagramCodec } from "./datagram_service.ts";

/** Longest address header of an IP literal: ATYP + 16 bytes + port. */
const MAX_IP_ADDRESS_LENGTH = 19;

/** The server side: Shadowsocks packets in from clients, plain datagrams out to targets. */
export function serverUdpCodec(method: MethodInfo, masterKey: Uint8Array): DatagramCodec {
  return {
    requestHeadroom: 0,
    replyHeadroom: MAX_IP_ADDRESS_LENGTH,
    unwrap(view) {
      const { address, payload } = decodeUdpPlaintext(openUdpPacket(method, masterKey, view));
      return { target: address, payload };
    },
    wrap(view, source) {
      // The address goes into the headroom right before the payload: no copy of the payload.
      const header = encodeAddress(addressFromHost(source.hostname, source.port));
      const start = MAX_IP_ADDRESS_LENGTH - header.length;
      view.set(header, start);
      return sealUdpPacket(method, masterKey, view.subarray(start));
    },
  };
}

/**
 * The tunnel side: plain datagrams from applications go to `target` through the server at
 * `server`; replies from the server are opened and their payload passed on.
 */
export function tunnelUdpCodec(
  method: MethodInfo,
  masterKey: Uint8Array,
  target: Address,
  server: Address,
): DatagramCodec {
  const header = encodeAddress(target);
  return {
    requestHeadroom: encodedAddressLength(target),
    replyHeadroom: 0,
    unwrap(view) {
      view.set(header, 0);
      return { target: server, payload: sealUdpPacket(method, masterKey, view) };
    },
    wrap(view) {
      return decodeUdpPlaintext(openUdpPacket(method, masterKey, view)).payload;
    },
  };
}
