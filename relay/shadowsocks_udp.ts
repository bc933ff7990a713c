/**
 * Shadowsocks UDP seen from the relays: codecs and client sessions that hide salts, nonces,
 * tags and packet IDs from the datagram code, the way `ShadowsocksStream` does for TCP. Every
 * method family goes through the same two seams:
 *
 * - server (`createServerUdpCodec`): a `DatagramCodec` for `serveDatagrams`. Client packets are
 *   opened to (target, payload); replies from a target are sealed with their source address.
 *   AEAD-2017 and the stream ciphers key a session by client address; 2022 by session ID
 *   (relay/shadowsocks_udp2022.ts).
 * - client (`createUdpClientCipher`): one `UdpClientSession` per association (SOCKS5 UDP
 *   ASSOCIATE, each tunnel client), sealing `address || payload` for the server and opening
 *   its replies. AEAD-2017 and stream sessions are stateless; 2022 ones carry IDs, counters and
 *   windows.
 *   `tunnelUdpCodec` puts such sessions behind `serveDatagrams` for the tunnel.
 * @module
 */
import { deriveMasterKey, evpBytesToKey } from "../crypto/kdf.ts";
import { assertMethodAvailable } from "../crypto/method_support.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { clientKeys2022, serverKeys2022 } from "../protocol/aead2022_identity.ts";
import {
  type Address,
  addressFromHost,
  encodeAddress,
  encodedAddressLength,
} from "../protocol/address.ts";
import {
  assertUdpMethod,
  decodeUdpPlaintext,
  openUdpPacket,
  openUdpRequest,
  sealUdpPacket,
  udpPacketOverhead,
} from "../protocol/udp_packet.ts";
import type { DatagramCodec, DatagramSession } from "./datagram_service.ts";
import {
  serverUdpCodec2022,
  udpClientSession2022,
  udpPacketOverhead2022,
} from "./shadowsocks_udp2022.ts";
import { formatEndpoint } from "./udp_socket.ts";
import { type AeadUserKey, KeyHints, trialOrder } from "../protocol/aead_framing.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { UdpClientSession } from "./udp_client_session.ts";

export type { UdpClientSession };

/** Longest address header of an IP literal: ATYP + 16 bytes + port. */
const MAX_IP_ADDRESS_LENGTH = 19;

/** One user of a multi-user 2022 server, as configured. */
export interface UdpUserConfig {
  readonly name: string;
  /** The user's PSK (base64). */
  readonly password: string;
}

/**
 * The server codec for `method`: AEAD-2017, stream ciphers and `none` take any password; 2022
 * methods take a base64 PSK and, for multi-user (SIP023), `users`. Throws `RangeError` for a
 * method without UDP (or users on a stream method), `InvalidPskError` for a bad key and
 * `CipherUnavailableError` for a cipher the crypto backend lacks, so a service can fail before
 * it binds anything.
 */
export function createServerUdpCodec(
  method: MethodInfo,
  password: string,
  users?: readonly UdpUserConfig[],
): DatagramCodec {
  assertMethodAvailable(method);
  if (method.family === "aead2022") {
    return serverUdpCodec2022(serverKeys2022(method, password, users));
  }
  assertUdpMethod(method);
  if (users !== undefined && method.family !== "aead") {
    throw new RangeError(`Invalid users for ${method.name}: multiple users need an AEAD method`);
  }
  if (users !== undefined) {
    return serverUdpCodecMultiUser(
      method,
      users.map((user) => ({
        name: user.name,
        masterKey: evpBytesToKey(user.password, method.keySize),
      })),
    );
  }
  return serverUdpCodec(method, deriveMasterKey(method, password));
}

/**
 * Seals a reply for the client: the replying address goes into the headroom right before the
 * payload (`MAX_IP_ADDRESS_LENGTH` bytes), so the payload is never copied.
 */
function replyWrapper(method: MethodInfo, masterKey: Uint8Array) {
  return (view: Uint8Array, source: Deno.NetAddr) => {
    const header = encodeAddress(addressFromHost(source.hostname, source.port));
    const start = MAX_IP_ADDRESS_LENGTH - header.length;
    view.set(header, start);
    return sealUdpPacket(method, masterKey, view.subarray(start));
  };
}

/**
 * The AEAD-2017 and stream-cipher server side: Shadowsocks packets in from clients, plain
 * datagrams out. `masterKey` is `deriveMasterKey(method, password)`.
 */
export function serverUdpCodec(method: MethodInfo, masterKey: Uint8Array): DatagramCodec {
  const wrap = replyWrapper(method, masterKey);
  return {
    requestHeadroom: 0,
    replyHeadroom: MAX_IP_ADDRESS_LENGTH,
    unwrap(view, from, find) {
      const { address, payload } = openUdpRequest(method, masterKey, view);
      const key = formatEndpoint(from);
      return {
        session: find(key) ?? { key, client: from, wrap },
        request: { target: address, payload },
      };
    },
  };
}

/** A client address of a multi-user AEAD-2017 listener, with the key it authenticated with. */
interface UserSession extends DatagramSession {
  readonly index: number;
}

/**
 * A multi-user AEAD-2017 server (Outline's many keys on one port): each packet is tried with
 * its client address's current key first, then that address's last key, then the others; the
 * key that opens it names the user, and replies are sealed with it.
 */
export function serverUdpCodecMultiUser(
  method: MethodInfo,
  users: readonly AeadUserKey[],
): DatagramCodec<UserSession> {
  const hints = new KeyHints();
  return {
    requestHeadroom: 0,
    replyHeadroom: MAX_IP_ADDRESS_LENGTH,
    users: users.map((user) => user.name),
    unwrap(view, from, find) {
      const key = formatEndpoint(from);
      const current = find(key);
      const hinted = current?.index ?? hints.get(from.hostname);
      for (const index of trialOrder(users.length, hinted)) {
        const user = users[index]!;
        let plaintext: Uint8Array;
        try {
          plaintext = openUdpPacket(method, user.masterKey, view);
        } catch (error) {
          if (error instanceof ProtocolError && error.code === "ERR_CIPHER") continue;
          throw error;
        }
        const { address, payload } = decodeUdpPlaintext(plaintext);
        hints.set(from.hostname, index);
        const session = current?.index === index ? current : {
          key,
          client: from,
          user: user.name,
          index,
          wrap: replyWrapper(method, user.masterKey),
        };
        return { session, request: { target: address, payload } };
      }
      throw new ProtocolError("ERR_CIPHER", "No user's key opens the packet");
    },
  };
}

/** The client side of one UDP association with the server. */
/** What a UDP client of one server needs: a way to start sessions. */
export interface UdpClientCipher {
  readonly method: MethodInfo;
  /** Most bytes a packet adds to its plaintext. */
  readonly overhead: number;
  /** A new session: one per association, so 2022 session IDs are never shared. */
  newSession(): UdpClientSession;
}

/**
 * The client cipher for `method` and `password` (2022: `uPSK` or `iPSK:...:uPSK`). Throws
 * `RangeError` for a method without UDP, `InvalidPskError` for a bad 2022 key and
 * `CipherUnavailableError` for a cipher the crypto backend lacks. With a stream method,
 * `saltPrefix` starts each packet's IV.
 */
export function createUdpClientCipher(
  method: MethodInfo,
  password: string,
  saltPrefix?: Uint8Array,
): UdpClientCipher {
  assertMethodAvailable(method);
  if (method.family === "aead2022") {
    // 2022 UDP packets carry no salt to prefix (the config layer says so first).
    if (saltPrefix) throw new RangeError("A UDP prefix needs an AEAD-2017 method");
    const keys = clientKeys2022(method, password);
    return {
      method,
      overhead: udpPacketOverhead2022(keys),
      newSession: () => udpClientSession2022(keys),
    };
  }
  assertUdpMethod(method);
  const masterKey = deriveMasterKey(method, password);
  const session: UdpClientSession = {
    seal: (plaintext, out) => sealUdpPacket(method, masterKey, plaintext, out, saltPrefix),
    open: (packet) => openUdpRequest(method, masterKey, packet),
  };
  return { method, overhead: udpPacketOverhead(method), newSession: () => session };
}

/**
 * The tunnel side: plain datagrams from each application address go to `target` through the
 * server at `server`, in that address's own client session; the payload of the server's
 * replies goes back to it.
 */
export function tunnelUdpCodec(
  pick: () => { cipher: UdpClientCipher; server: Address },
  target: Address,
): DatagramCodec<TunnelSession> {
  const header = encodeAddress(target);
  return {
    requestHeadroom: encodedAddressLength(target),
    replyHeadroom: 0,
    unwrap(view, from, find) {
      view.set(header, 0);
      const key = formatEndpoint(from);
      const session = find(key) ?? tunnelSession(key, from, pick());
      // No `out`: the packet waits in the association's queue.
      return { session, request: { target: session.server, payload: session.udp.seal(view) } };
    },
  };
}

/** One application address of the tunnel and its client session. */
export interface TunnelSession extends DatagramSession {
  readonly udp: UdpClientSession;
  /** The Shadowsocks server this application address's datagrams go to. */
  readonly server: Address;
}

function tunnelSession(
  key: string,
  client: Deno.NetAddr,
  upstream: { cipher: UdpClientCipher; server: Address },
): TunnelSession {
  const udp = upstream.cipher.newSession();
  return { key, client, udp, server: upstream.server, wrap: (view) => udp.open(view).payload };
}
