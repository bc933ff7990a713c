/**
 * Shadowsocks 2022 UDP sessions (SIP022 §7.5–7.7, SIP023) behind the relays' two seams: a
 * `DatagramCodec` for the server and a `UdpClientSession` for the local and the tunnel. The
 * packet layout lives in protocol/aead2022_udp.ts; this file keeps the per-session state.
 *
 * ```
 * client session (one per association)        server session (one per client session ID + user)
 *   id = random, packet ID 0, 1, 2, ...  ═══▶    window over the client's packet IDs
 *   windows of the current and previous  ◀═══    own random ID (≠ the client's), packet ID 0, 1, ...
 *   server session                               replies go to the last source that passed
 * ```
 *
 * Server: a packet is opened (separate header → user → body → type and timestamp) before its
 * session is looked at; only then does the session's window accept its packet ID (a replay or
 * an ID too old is `ERR_REPLAY`) and the session's reply address move to the packet's source
 * (client address migration). Sessions are keyed by session ID and user, never by address, and
 * kept at least `SESSION_MEMORY_MS` after their last packet so a replay within the ±30 s
 * timestamp tolerance still meets its window. The bound is the NAT table's: a full table evicts
 * its least recently used session, whose packets are then no longer recognised as replays —
 * only a holder of a valid key can cause that.
 *
 * Client: a new session ID before the packet ID reaches `REJECT_AFTER_PACKET_ID`. Replies must
 * name our session; each server session gets its own window. The current and the previous
 * server session are accepted (a server restart); a third one is refused while the previous one
 * was heard from less than `SESSION_MEMORY_MS` ago, as shadowsocks-go does.
 * @module
 */
import type { AeadPrimitive } from "../crypto/aead_primitive.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { addressFromHost, decodeAddress } from "../protocol/address.ts";
import {
  type ClientKeys2022,
  EIH_SIZE,
  type ServerKeys2022,
} from "../protocol/aead2022_identity.ts";
import {
  createUdpSessionAead,
  openClientPacket,
  type OpenedClientPacket,
  openServerPacket,
  randomSessionId,
  sealClientPacket,
  sealServerPacket,
  SEPARATE_HEADER_LENGTH,
  XCHACHA_NONCE_SIZE,
} from "../protocol/aead2022_udp.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { REJECT_AFTER_PACKET_ID, SlidingWindow } from "../protocol/sliding_window.ts";
import type { UdpPlaintext } from "../protocol/udp_packet.ts";
import type { DatagramCodec, DatagramSession } from "./datagram_service.ts";
import type { UdpClientSession } from "./udp_client_session.ts";

/** How long a session is remembered after its last packet: twice the timestamp tolerance. */
export const SESSION_MEMORY_MS = 60_000;
/** Bytes of a body before the address: type, timestamp, padding length (no padding sent). */
const CLIENT_BODY_FIXED = 1 + 8 + 2;

/** Options of the 2022 sessions. */
export interface Udp2022Options {
  /** Wall clock in milliseconds, for timestamps and session memory. Default `Date.now`. */
  now?: () => number;
  /**
   * Client sessions: a new session starts when the next packet ID would reach this. Default
   * (and maximum) `REJECT_AFTER_PACKET_ID`, which receivers refuse.
   */
  packetIdLimit?: bigint;
}

/** Bytes a client packet adds to `address || payload` (no padding is sent). */
export function udpPacketOverhead2022(keys: ClientKeys2022): number {
  const { method } = keys;
  const outer = isAes(method)
    ? SEPARATE_HEADER_LENGTH + EIH_SIZE * keys.identityPsks.length
    : XCHACHA_NONCE_SIZE + SEPARATE_HEADER_LENGTH;
  return outer + CLIENT_BODY_FIXED + method.tagSize;
}

// ---------------------------------------------------------------------------------------------
// Server

/** One client session as the server keeps it. */
export class ServerSession2022 implements DatagramSession {
  readonly key: string;
  /** The last source a packet of this session passed from: replies go there. */
  client: Deno.NetAddr;
  readonly user: string | undefined;
  readonly clientSessionId: bigint;
  /** The client's packet IDs seen. */
  readonly window: SlidingWindow = new SlidingWindow();
  /** Opens this session's packets (AES methods). */
  readonly clientAead: AeadPrimitive | undefined;
  /** Our own session ID toward this client: random, never the client's. */
  readonly serverSessionId: bigint;
  readonly #method: MethodInfo;
  readonly #psk: Uint8Array;
  readonly #replyAead: AeadPrimitive | undefined;
  readonly #now: () => number;
  #nextPacketId = 0n;

  constructor(
    key: string,
    from: Deno.NetAddr,
    packet: OpenedClientPacket,
    method: MethodInfo,
    clientAead: AeadPrimitive | undefined,
    now: () => number,
  ) {
    this.key = key;
    this.client = from;
    this.user = packet.user?.name;
    this.clientSessionId = packet.sessionId;
    this.clientAead = clientAead;
    let id = randomSessionId();
    while (id === packet.sessionId) id = randomSessionId();
    this.serverSessionId = id;
    this.#method = method;
    this.#psk = packet.psk;
    this.#replyAead = isAes(method) ? createUdpSessionAead(method, packet.psk, id) : undefined;
    this.#now = now;
  }

  /** Seals one reply from `source`; `view` is the payload (no headroom). */
  wrap(view: Uint8Array, source: Deno.NetAddr): Uint8Array {
    if (this.#nextPacketId >= REJECT_AFTER_PACKET_ID) {
      throw new ProtocolError("ERR_RELAY_TARGET", "Server session used up its packet IDs");
    }
    return sealServerPacket(this.#method, this.#psk, {
      sessionId: this.serverSessionId,
      packetId: this.#nextPacketId++,
      clientSessionId: this.clientSessionId,
      address: addressFromHost(source.hostname, source.port),
      payload: view,
    }, { aead: this.#replyAead, now: this.#now });
  }
}

/**
 * The 2022 server codec: sessions by client session ID (and user), replay window per session,
 * replies under the server's own session to the client's latest address. With users, each
 * session is counted under its user's name.
 */
export function serverUdpCodec2022(
  keys: ServerKeys2022,
  options: Udp2022Options = {},
): DatagramCodec<ServerSession2022> {
  const { method } = keys;
  const now = options.now ?? Date.now;
  // The user behind a PSK object (openClientPacket hands back the table's own key objects).
  const userOfPsk = new Map<Uint8Array, string>();
  for (const user of keys.users?.values() ?? []) userOfPsk.set(user.psk, user.name);
  const keyOf = (sessionId: bigint, psk: Uint8Array) => {
    const id = sessionId.toString(16).padStart(16, "0");
    const user = userOfPsk.get(psk);
    // Keyed by user too: one user reusing another's session ID gets a session of its own.
    return user === undefined ? id : `${id} ${user}`;
  };
  return {
    requestHeadroom: 0,
    replyHeadroom: 0,
    minIdleMs: SESSION_MEMORY_MS,
    ...(keys.users ? { users: [...userOfPsk.values()] } : {}),
    unwrap(view, from, find) {
      let derived: AeadPrimitive | undefined;
      const packet = openClientPacket(keys, view, {
        now,
        aeadFor: (sessionId, psk) =>
          find(keyOf(sessionId, psk))?.clientAead ??
            (derived = createUdpSessionAead(method, psk, sessionId)),
      });
      const key = keyOf(packet.sessionId, packet.psk);
      const session = find(key) ?? new ServerSession2022(key, from, packet, method, derived, now);
      if (!session.window.accept(packet.packetId)) {
        throw new ProtocolError(
          "ERR_REPLAY",
          `Packet ID ${packet.packetId} replayed or too old for its session`,
        );
      }
      session.client = from;
      return { session, request: { target: packet.address, payload: packet.payload } };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Client

/** A server session as one client session sees it. */
interface KnownServerSession {
  readonly id: bigint;
  readonly window: SlidingWindow;
  /** Opens its packets (AES methods). */
  readonly aead: AeadPrimitive | undefined;
  lastSeen: number;
}

/** A new client session for `keys` (one per association). */
export function udpClientSession2022(
  keys: ClientKeys2022,
  options: Udp2022Options = {},
): ClientSession2022 {
  return new ClientSession2022(keys, options);
}

/** One client session: its ID and packet counter, and the server sessions answering it. */
export class ClientSession2022 implements UdpClientSession {
  readonly #keys: ClientKeys2022;
  readonly #now: () => number;
  readonly #packetIdLimit: bigint;
  #id = 0n;
  #nextPacketId = 0n;
  #aead: AeadPrimitive | undefined;
  #current: KnownServerSession | undefined;
  #previous: KnownServerSession | undefined;

  constructor(keys: ClientKeys2022, options: Udp2022Options = {}) {
    this.#keys = keys;
    this.#now = options.now ?? Date.now;
    const limit = options.packetIdLimit ?? REJECT_AFTER_PACKET_ID;
    this.#packetIdLimit = limit < REJECT_AFTER_PACKET_ID ? limit : REJECT_AFTER_PACKET_ID;
    this.#start();
  }

  /** The current session ID. */
  get id(): bigint {
    return this.#id;
  }

  /** Seals `address || payload`, starting a new session before the packet IDs run out. */
  seal(plaintext: Uint8Array): Uint8Array {
    if (this.#nextPacketId >= this.#packetIdLimit) this.#start();
    const decoded = decodeAddress(plaintext);
    if (decoded === undefined) {
      throw new ProtocolError("ERR_READ_ADDRESS", "UDP address header truncated");
    }
    return sealClientPacket(this.#keys, {
      sessionId: this.#id,
      packetId: this.#nextPacketId++,
      address: decoded.address,
      payload: plaintext.subarray(decoded.length),
    }, { aead: this.#aead, now: this.#now });
  }

  /** Opens a reply: our session, a known (or acceptable new) server session, a fresh ID. */
  open(packet: Uint8Array): UdpPlaintext {
    const { method } = this.#keys;
    let derived: AeadPrimitive | undefined;
    const opened = openServerPacket(this.#keys, packet, {
      clientSessionId: this.#id,
      now: this.#now,
      aeadFor: (sessionId, psk) =>
        this.#known(sessionId)?.aead ?? (derived = createUdpSessionAead(method, psk, sessionId)),
    });
    const server = this.#serverSession(opened.sessionId, derived);
    if (!server.window.accept(opened.packetId)) {
      throw new ProtocolError(
        "ERR_REPLAY",
        `Packet ID ${opened.packetId} replayed or too old for its server session`,
      );
    }
    server.lastSeen = this.#now();
    return { address: opened.address, payload: opened.payload };
  }

  /** A fresh session ID and counter; server sessions of the old one are forgotten. */
  #start(): void {
    this.#id = randomSessionId();
    this.#nextPacketId = 0n;
    const { method, userPsk } = this.#keys;
    this.#aead = isAes(method) ? createUdpSessionAead(method, userPsk, this.#id) : undefined;
    this.#current = undefined;
    this.#previous = undefined;
  }

  #known(id: bigint): KnownServerSession | undefined {
    if (this.#current?.id === id) return this.#current;
    if (this.#previous?.id === id) return this.#previous;
    return undefined;
  }

  /** The server session `id`, made current if new and allowed (see the module doc). */
  #serverSession(id: bigint, aead: AeadPrimitive | undefined): KnownServerSession {
    const known = this.#known(id);
    if (known) return known;
    const now = this.#now();
    if (this.#previous !== undefined && now - this.#previous.lastSeen < SESSION_MEMORY_MS) {
      throw new ProtocolError(
        "ERR_REPLAY",
        "Server session changed more than once during the last minute",
      );
    }
    this.#previous = this.#current;
    this.#current = { id, window: new SlidingWindow(), aead, lastSeen: now };
    return this.#current;
  }
}

function isAes(method: MethodInfo): boolean {
  return method.algorithm !== "chacha20-poly1305";
}
