/**
 * One client's session with a Shadowsocks server's UDP side, whatever the edition: the local and
 * the tunnel seal their datagrams with it and open the replies. Its own module so that the
 * edition modules implement it without importing each other.
 * @module
 */
import type { UdpPlaintext } from "../protocol/udp_packet.ts";

export interface UdpClientSession {
  /**
   * Seals one Shadowsocks UDP plaintext (`address || payload`) into a packet for the server.
   * With `out` (at least `plaintext.length + overhead` bytes, not overlapping `plaintext`) an
   * AEAD-2017 packet is written there and a view returned; 2022 packets are always new arrays.
   */
  seal(plaintext: Uint8Array, out?: Uint8Array): Uint8Array;
  /** Opens one packet from the server. Throws `ProtocolError` to drop it. */
  open(packet: Uint8Array): UdpPlaintext;
}
