/**
 * UDP fixtures for end-to-end, probe and interop tests: a UDP peer with a bounded receive queue
 * and timeouts, a UDP echo target, a minimal SOCKS5 UDP ASSOCIATE client and raw Shadowsocks
 * UDP clients (AEAD-2017 and 2022). Everything binds 127.0.0.1 on port 0 and is released by
 * `close()`.
 */
import { findMethod } from "../../crypto/methods.ts";
import { evpBytesToKey } from "../../crypto/kdf.ts";
import {
  type Address,
  addressFromHost,
  decodeAddress,
  encodeAddress,
} from "../../protocol/address.ts";
import { type ClientKeys2022, clientKeys2022 } from "../../protocol/aead2022_identity.ts";
import {
  type OpenedServerPacket,
  openServerPacket,
  randomSessionId,
  sealClientPacket,
} from "../../protocol/aead2022_udp.ts";
import {
  decodeSocksUdpHeader,
  decodeUdpPlaintext,
  encodeSocksUdpHeader,
  encodeUdpPlaintext,
  openUdpPacket,
  sealUdpPacket,
} from "../../protocol/udp_packet.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { UDP_BUFFER_SIZE, UdpSocket } from "../../relay/udp_socket.ts";

/** Datagrams a peer keeps before dropping new ones (tests read them long before that). */
const QUEUE_LIMIT = 4096;

/** A received datagram. */
export interface Received {
  data: Uint8Array;
  from: Deno.NetAddr;
}

/** A UDP socket whose datagrams are queued by a background loop, so reads can time out. */
export class UdpPeer {
  readonly socket: UdpSocket;
  readonly #queue: Received[] = [];
  #waiter: (() => void) | undefined;
  readonly #loop: Promise<void>;

  constructor(hostname = "127.0.0.1", port = 0) {
    this.socket = UdpSocket.bind(hostname, port);
    this.#loop = this.#receiveLoop();
  }

  get port(): number {
    return this.socket.addr.port;
  }

  /** Datagrams received and not yet read. */
  get pending(): number {
    return this.#queue.length;
  }

  send(data: Uint8Array, port: number, hostname = "127.0.0.1"): Promise<void> {
    return this.socket.send(data, { hostname, port });
  }

  /** The next datagram; throws after `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<Received> {
    const until = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = until - Date.now();
      if (left <= 0) throw new Error(`No datagram on port ${this.port} within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#waiter = undefined;
    }
    return this.#queue.shift()!;
  }

  /** Resolves true when nothing arrives for `ms` (and leaves the queue as it is). */
  async silentFor(ms: number): Promise<boolean> {
    const before = this.#queue.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.#queue.length === before;
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.#loop;
  }

  async #receiveLoop(): Promise<void> {
    const buffer = new Uint8Array(UDP_BUFFER_SIZE);
    for (;;) {
      const datagram = await this.socket.receive(buffer);
      if (!datagram) return;
      if (this.#queue.length < QUEUE_LIMIT) {
        this.#queue.push({ data: datagram.data.slice(), from: datagram.from });
      }
      this.#waiter?.();
    }
  }
}

/** A UDP echo target: every datagram goes back to its sender unchanged. */
export class UdpEcho {
  readonly socket: UdpSocket;
  /** Datagrams echoed so far. */
  echoed = 0;
  /** Source ports seen, in order (to tell NAT associations apart). */
  readonly sources: number[] = [];
  readonly #loop: Promise<void>;

  /** With `reportSource`, the reply is the sender's port (2 bytes, big-endian) instead. */
  constructor(options: { hostname?: string; port?: number; reportSource?: boolean } = {}) {
    this.socket = UdpSocket.bind(options.hostname ?? "127.0.0.1", options.port ?? 0);
    this.#loop = this.#serve(options.reportSource ?? false);
  }

  get port(): number {
    return this.socket.addr.port;
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.#loop;
  }

  async #serve(reportSource: boolean): Promise<void> {
    const buffer = new Uint8Array(UDP_BUFFER_SIZE);
    for (;;) {
      const datagram = await this.socket.receive(buffer);
      if (!datagram) return;
      const { data, from } = datagram;
      if (this.sources.length < 100_000) this.sources.push(from.port);
      const reply = reportSource ? Uint8Array.of(from.port >> 8, from.port & 0xff) : data;
      try {
        await this.socket.send(reply, { hostname: from.hostname, port: from.port });
        this.echoed++;
      } catch (error) {
        if (!this.socket.closed) throw error;
      }
    }
  }
}

/** A SOCKS5 client holding one UDP association: the control connection and its UDP socket. */
export class SocksUdpClient {
  readonly control: Deno.TcpConn;
  readonly peer: UdpPeer;
  /** Where the local side told us to send datagrams. */
  readonly relay: { hostname: string; port: number };

  private constructor(
    control: Deno.TcpConn,
    peer: UdpPeer,
    relay: { hostname: string; port: number },
  ) {
    this.control = control;
    this.peer = peer;
    this.relay = relay;
  }

  /**
   * Opens the control connection to `proxyPort` on `hostname` (default 127.0.0.1), asks for
   * UDP ASSOCIATE (announcing our UDP port unless `announcePort` is false) and binds the UDP
   * socket on the same host. Throws on a non-zero REP, with the code in the message.
   */
  static async open(
    proxyPort: number,
    options: { announcePort?: boolean; hostname?: string } = {},
  ): Promise<SocksUdpClient> {
    const hostname = options.hostname ?? "127.0.0.1";
    const peer = new UdpPeer(hostname);
    const control = await Deno.connect({ hostname, port: proxyPort });
    try {
      const reply = await socksRequest(
        control,
        0x03,
        addressFromHost("0.0.0.0", options.announcePort === false ? 0 : peer.port),
      );
      if (reply.rep !== 0) throw new Error(`UDP ASSOCIATE refused: REP ${reply.rep}`);
      const host = reply.bound.host === "0.0.0.0" ? "127.0.0.1" : reply.bound.host;
      return new SocksUdpClient(control, peer, { hostname: host, port: reply.bound.port });
    } catch (error) {
      control.close();
      await peer.close();
      throw error;
    }
  }

  /** Sends `payload` to `target` through the association (FRAG as given, default 0). */
  send(target: Address, payload: Uint8Array, fragment = 0): Promise<void> {
    const header = encodeSocksUdpHeader(target);
    header[2] = fragment;
    const datagram = new Uint8Array(header.length + payload.length);
    datagram.set(header);
    datagram.set(payload, header.length);
    return this.peer.send(datagram, this.relay.port, this.relay.hostname);
  }

  /** The next reply: the address it came from and its payload. */
  async next(timeoutMs = 3000): Promise<{ address: Address; payload: Uint8Array }> {
    const { data } = await this.peer.next(timeoutMs);
    const header = decodeSocksUdpHeader(data);
    return { address: header.address, payload: data.subarray(header.length) };
  }

  /** Sends and waits for the echo; returns the reply. */
  async roundTrip(
    target: Address,
    payload: Uint8Array,
    timeoutMs = 3000,
  ): Promise<{ address: Address; payload: Uint8Array }> {
    await this.send(target, payload);
    return await this.next(timeoutMs);
  }

  async close(): Promise<void> {
    try {
      this.control.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    await this.peer.close();
  }
}

/** Sends greeting and request with command `command`; returns REP and the bound address. */
export async function socksRequest(
  conn: Deno.TcpConn,
  command: number,
  address: Address,
): Promise<{ rep: number; bound: Address }> {
  await writeAll(conn, Uint8Array.of(5, 1, 0));
  const choice = await readExact(conn, new Uint8Array(2));
  if (!choice || choice[1] !== 0) throw new Error(`Method refused: ${choice}`);
  await writeAll(conn, Uint8Array.of(5, command, 0, ...encodeAddress(address)));
  const head = await readExact(conn, new Uint8Array(4));
  if (!head) throw new Error("No SOCKS5 reply");
  const rest = await readExact(
    conn,
    new Uint8Array(head[3] === 1 ? 6 : head[3] === 4 ? 18 : 0),
  );
  const decoded = decodeAddress(Uint8Array.of(head[3]!, ...(rest ?? [])));
  if (!decoded) throw new Error(`Unexpected ATYP in reply: ${head[3]}`);
  return { rep: head[1]!, bound: decoded.address };
}

/** Speaks Shadowsocks UDP straight to a server, for tests that bypass the local side. */
export class ShadowsocksUdpClient {
  readonly peer: UdpPeer;
  readonly #method;
  readonly #key: Uint8Array;
  readonly #serverPort: number;

  constructor(method: string, password: string, serverPort: number) {
    const info = findMethod(method);
    if (!info) throw new RangeError(`Invalid method "${method}"`);
    this.#method = info;
    this.#key = evpBytesToKey(password, info.keySize);
    this.#serverPort = serverPort;
    this.peer = new UdpPeer();
  }

  /** A sealed packet for `target` and `payload` (for tampering tests). */
  seal(target: Address, payload: Uint8Array): Uint8Array {
    return this.sealPlaintext(encodeUdpPlaintext(target, payload));
  }

  sealPlaintext(plaintext: Uint8Array): Uint8Array {
    return sealUdpPacket(this.#method, this.#key, plaintext);
  }

  sendRaw(packet: Uint8Array): Promise<void> {
    return this.peer.send(packet, this.#serverPort);
  }

  send(target: Address, payload: Uint8Array): Promise<void> {
    return this.sendRaw(this.seal(target, payload));
  }

  async next(timeoutMs = 3000): Promise<{ address: Address; payload: Uint8Array }> {
    const { data } = await this.peer.next(timeoutMs);
    return decodeUdpPlaintext(openUdpPacket(this.#method, this.#key, data));
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}

/**
 * Speaks 2022 UDP straight to a server with full control of the session: its ID, packet IDs,
 * clock and source port, and the raw bytes of every packet (to replay them).
 */
export class Shadowsocks2022UdpClient {
  readonly peer: UdpPeer;
  readonly keys: ClientKeys2022;
  /** The session every packet is sealed in. */
  sessionId: bigint = randomSessionId();
  /** The packet ID the next `seal` uses unless told otherwise. */
  nextPacketId = 0n;
  readonly #serverPort: number;

  /** `password` is a uPSK, or `iPSK:uPSK` for a multi-user server. */
  constructor(method: string, password: string, serverPort: number) {
    const info = findMethod(method);
    if (!info) throw new RangeError(`Invalid method "${method}"`);
    this.keys = clientKeys2022(info, password);
    this.#serverPort = serverPort;
    this.peer = new UdpPeer();
  }

  /** A sealed packet; `packetId` defaults to the next one, `now` to the wall clock. */
  seal(
    target: Address,
    payload: Uint8Array,
    options: { packetId?: bigint; now?: () => number } = {},
  ): Uint8Array {
    const packetId = options.packetId ?? this.nextPacketId++;
    return sealClientPacket(
      this.keys,
      { sessionId: this.sessionId, packetId, address: target, payload },
      options.now ? { now: options.now } : {},
    );
  }

  /** Sends raw bytes to the server, from our own socket or from `from`. */
  sendRaw(packet: Uint8Array, from: UdpPeer = this.peer): Promise<void> {
    return from.send(packet, this.#serverPort);
  }

  send(target: Address, payload: Uint8Array): Promise<void> {
    return this.sendRaw(this.seal(target, payload));
  }

  /** The next reply arriving at `at` (default our socket), opened for our session. */
  async next(timeoutMs = 3000, at: UdpPeer = this.peer): Promise<OpenedServerPacket> {
    const { data } = await at.next(timeoutMs);
    return openServerPacket(this.keys, data, { clientSessionId: this.sessionId });
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}

/** A fresh base64 key of `keySize` bytes (a 2022 PSK). */
export function randomPsk(keySize: number): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(keySize))));
}

/** `127.0.0.1:port` as an address. */
export function loopback(port: number): Address {
  return { type: "ipv4", host: "127.0.0.1", port };
}

/** Deterministic bytes for datagram `index` of `size` bytes, so every byte can be checked. */
export function datagramBytes(size: number, index: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (index * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
