/**
 * SOCKS5 UDP ASSOCIATE on the local side (RFC 1928 §7). One association per control connection:
 *
 * ```
 *   uplink:   app ─SOCKS5 UDP─▶ relay socket ─strip RSV FRAG, seal─▶ outbound socket ═▶ server
 *   downlink: server ═▶ outbound socket ─open, prefix 00 00 00─▶ relay socket ─▶ app
 * ```
 *
 * The relay socket is bound on the address the app reached us on, port 0, and announced in the
 * reply. It accepts datagrams only from the control connection's IP, and only from one port:
 * the one the request named, or else the first one a valid datagram comes from. Fragments
 * (FRAG ≠ 0) are dropped. The association ends when the control connection closes, on
 * shutdown, or when the association table evicts it (full: least recently used first; idle for
 * `udp_timeout`), and then closes both sockets and the control connection.
 *
 * Each association is one client session with the server (`UdpClientSession`): for the 2022
 * edition its own session ID, packet counter and replay windows, so two apps never share one.
 *
 * Per association: two sockets and three 64 KiB buffers (two receive, one for sealing).
 *
 * Every socket is bound outside the process's port quarantine and its port quarantined when the
 * association closes (relay/port_quarantine.ts), as on the server: a port the kernel hands out
 * again at once would otherwise give a new association the replies still on their way to the one
 * that just ended (another app's, or another machine's when the local serves a LAN).
 * @module
 */
import { type Address, addressFromHost, encodeAddress } from "../protocol/address.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import { encodeReply, Reply } from "../protocol/socks5.ts";
import {
  decodeSocksUdpHeader,
  decodeUdpPlaintext,
  SOCKS_UDP_PREFIX_LENGTH,
} from "../protocol/udp_packet.ts";
import { sweepInterval } from "./datagram_service.ts";
import { resolveTarget } from "./direct.ts";
import { closeQuietly, type Duplex, writeAll } from "./io.ts";
import type { Logger } from "./log.ts";
import { LoopGuard } from "./loop_errors.ts";
import { NatTable, type RemovalReason } from "./nat_table.ts";
import { bindOutside, type PortQuarantine, processQuarantine } from "./port_quarantine.ts";
import type { UdpClientCipher, UdpClientSession } from "./shadowsocks_udp.ts";
import { formatEndpoint, UDP_BUFFER_SIZE, UdpSocket, unmapIpv4 } from "./udp_socket.ts";
import type { UdpStats } from "./udp_stats.ts";

/** What every association of one local service shares. */
export interface UdpAssociateContext {
  /** Starts one client session per association. */
  cipher: UdpClientCipher;
  /** The Shadowsocks server (name or IP literal) and its UDP port. */
  server: string;
  serverPort: number;
  associations: NatTable<SocksUdpAssociation>;
  stats: UdpStats;
  logger: Logger;
  /**
   * The router's decision per datagram target (an ACL): `bypass` is sent from this machine
   * straight to the target, `block` dropped and counted as `ERR_BLOCKED`. Absent: all proxied.
   */
  route?: (target: Address) => Promise<"proxy" | "bypass" | "block">;
  /** Ports closed a moment ago, kept out of new sockets. Default: the process's. */
  quarantine?: PortQuarantine;
  /** With several servers: the one a new association uses (default: the fields above). */
  pick?: () => { cipher: UdpClientCipher; server: string; serverPort: number };
}

/** One live association as the table sees it: closing it ends the whole session. */
export class SocksUdpAssociation {
  readonly #resources: { close(): void }[];
  readonly #quarantine: PortQuarantine;
  #closed = false;
  /** Set by the table when it removes the association. */
  removedFor: RemovalReason | undefined;

  constructor(resources: { close(): void }[], quarantine: PortQuarantine = processQuarantine) {
    this.#resources = resources;
    this.#quarantine = quarantine;
  }

  /** Adds a resource opened later (a direct socket); closed at once if the association is. */
  add(resource: { close(): void }): void {
    this.#resources.push(resource);
    if (this.#closed) this.#release(resource);
  }

  /** Whether it has been closed (by the app, the table or shutdown). */
  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const resource of this.#resources) this.#release(resource);
  }

  /** Closes `resource`; a UDP socket's port goes into quarantine first. */
  #release(resource: { close(): void }): void {
    if (resource instanceof UdpSocket) this.#quarantine.add(resource.addr.port);
    closeQuietly(resource);
  }
}

/**
 * The association table of a local service: at most `capacity` associations (least recently
 * used evicted first), each closed after `idleMs` without a datagram either way.
 */
export function createAssociationTable(
  options: { capacity: number; idleMs: number; stats: UdpStats; now?: () => number },
): NatTable<SocksUdpAssociation> {
  const { stats } = options;
  return new NatTable<SocksUdpAssociation>({
    capacity: options.capacity,
    idleMs: options.idleMs,
    sweepIntervalMs: sweepInterval(options.idleMs),
    ...(options.now ? { now: options.now } : {}),
    onRemove: (_key, association, reason) => {
      association.removedFor = reason;
      stats.associations--;
      if (reason === "lru") stats.associationsEvicted++;
      if (reason === "idle") stats.associationsExpired++;
    },
  });
}

let nextAssociationId = 0;

/**
 * Serves one UDP ASSOCIATE whose request has been read: binds the sockets, sends the reply, and
 * relays until the association ends. `control` is the connection to reply on and watch;
 * `reader` reads it (it may hold bytes read ahead). Returns the session status: `OK` when the
 * app closed the control connection (or the association was evicted or shut down),
 * `ERR_TIMEOUT` when it was idle too long, `ERR_CONNECT` when the sockets could not be set up.
 */
export async function serveUdpAssociate(
  control: Deno.TcpConn,
  reader: Pick<Duplex, "read">,
  requested: Address,
  context: UdpAssociateContext,
): Promise<SessionStatus> {
  const { stats, logger } = context;
  const upstream = context.pick?.() ?? context;
  let serverIp: string;
  try {
    [serverIp] = await resolveTarget(addressFromHost(upstream.server, upstream.serverPort)) as [
      string,
    ];
  } catch (error) {
    await sendReply(control, Reply.hostUnreachable);
    logger.debug(`local udp: cannot resolve the server: ${errorMessage(error)}`);
    return "ERR_CONNECT";
  }
  const quarantine = context.quarantine ?? processQuarantine;
  const opened: UdpSocket[] = [];
  try {
    const appSide = unmapIpv4(control.localAddr.hostname);
    opened.push(bindOutside(() => UdpSocket.bind(appSide, 0), quarantine));
    const serverSide = serverIp.includes(":") ? "::" : "0.0.0.0";
    opened.push(bindOutside(() => UdpSocket.bind(serverSide, 0), quarantine));
  } catch (error) {
    for (const socket of opened) socket.close();
    await sendReply(control, Reply.generalFailure);
    logger.info(`local udp: cannot open a UDP socket: ${errorMessage(error)}`);
    return "ERR_CONNECT";
  }
  const [relaySocket, outbound] = opened as [UdpSocket, UdpSocket];
  const association = new SocksUdpAssociation([relaySocket, outbound, control], quarantine);
  const key = `${formatEndpoint(control.remoteAddr)}#${nextAssociationId++}`;
  context.associations.set(key, association);
  stats.associations++;
  stats.associationsOpened++;

  try {
    const bound = relaySocket.addr;
    await writeAll(
      control,
      encodeReply(Reply.succeeded, addressFromHost(bound.hostname, bound.port)),
    );
  } catch (error) {
    context.associations.delete(key, association);
    logger.debug(`local udp ${key}: reply failed: ${errorMessage(error)}`);
    return "ERR_RELAY_CLIENT";
  }

  const link: AssociationLink = {
    relaySocket,
    outbound,
    server: { hostname: serverIp, port: upstream.serverPort },
    client: {
      ip: unmapIpv4(control.remoteAddr.hostname),
      port: requested.port !== 0 ? requested.port : undefined,
    },
    session: upstream.cipher.newSession(),
    overhead: upstream.cipher.overhead,
    context,
    touch: () => context.associations.touch(key, association),
    direct: new DirectPath(association, quarantine),
  };
  const loops = [uplink(link), downlink(link)];
  try {
    await watchControl(reader);
  } finally {
    // Whoever ended it (the app, the table, shutdown), both sockets close and both loops end.
    context.associations.delete(key, association);
    association.close();
    await Promise.all(loops);
    await link.direct.done();
  }
  logger.debug(`local udp ${key} ended (${association.removedFor ?? "deleted"})`);
  return association.removedFor === "idle" ? "ERR_TIMEOUT" : "OK";
}

/** Who may use the relay socket: the control connection's IP, and one port once known. */
interface ClientFilter {
  readonly ip: string;
  port: number | undefined;
}

/** What both directions of one association share. */
/** What an association's loops share; exported for tests. */
export interface AssociationLink {
  /** The socket the app sends to (the address in the UDP ASSOCIATE reply). */
  readonly relaySocket: UdpSocket;
  /** The socket that talks to the Shadowsocks server. */
  readonly outbound: UdpSocket;
  readonly server: { hostname: string; port: number };
  readonly client: ClientFilter;
  readonly session: UdpClientSession;
  /** Bytes the session's cipher adds to a datagram. */
  readonly overhead: number;
  readonly context: UdpAssociateContext;
  /** Marks the association used (its idle expiry starts again). */
  readonly touch: () => void;
  /** Sockets for datagrams the router bypasses, opened on first use. */
  readonly direct: DirectPath;
}

/** App → server: check the source, strip RSV FRAG, seal, send. Ends when the socket closes. */
async function uplink(link: AssociationLink): Promise<void> {
  const { relaySocket, outbound, server, client, session, context, touch } = link;
  const { stats } = context;
  const buffer = new Uint8Array(UDP_BUFFER_SIZE);
  const sealed = new Uint8Array(UDP_BUFFER_SIZE + link.overhead);
  const guard = receiveGuard(relaySocket, context);
  for (;;) {
    const datagram = await relaySocket.receiveNext(buffer, guard);
    if (!datagram) return;
    const { data, from } = datagram;
    if (
      unmapIpv4(from.hostname) !== client.ip ||
      (client.port !== undefined && from.port !== client.port)
    ) {
      stats.foreignDropped++;
      continue;
    }
    let fragment: number;
    try {
      fragment = decodeSocksUdpHeader(data).fragment;
    } catch (error) {
      stats.statuses[error instanceof ProtocolError ? error.code : "ERR_READ_ADDRESS"]++;
      continue;
    }
    if (fragment !== 0) {
      stats.fragmentsDropped++;
      continue;
    }
    client.port ??= from.port;
    touch();
    if (context.route) {
      let decided;
      try {
        const { address, payload } = decodeUdpPlaintext(data.subarray(SOCKS_UDP_PREFIX_LENGTH));
        decided = { address, payload, route: await context.route(address) };
      } catch (error) {
        stats.statuses[error instanceof ProtocolError ? error.code : "ERR_READ_ADDRESS"]++;
        continue;
      }
      if (decided.route === "block") {
        stats.statuses.ERR_BLOCKED++;
        continue;
      }
      if (decided.route === "bypass") {
        await link.direct.send(link, decided.address, decided.payload.slice());
        continue;
      }
    }
    let packet: Uint8Array;
    try {
      packet = session.seal(data.subarray(SOCKS_UDP_PREFIX_LENGTH), sealed);
    } catch (error) {
      stats.statuses[error instanceof ProtocolError ? error.code : "ERR_READ_ADDRESS"]++;
      context.logger.debug(`local udp: cannot seal: ${errorMessage(error)}`);
      continue;
    }
    try {
      await outbound.send(packet, server);
      stats.statuses.OK++;
      stats.bytesUplink += packet.length;
    } catch (error) {
      stats.statuses.ERR_RELAY_TARGET++;
      context.logger.debug(`local udp: send to the server failed: ${errorMessage(error)}`);
    }
  }
}

/** Server → app: check the source, open, prefix `00 00 00`, send to the app. */
async function downlink(link: AssociationLink): Promise<void> {
  const { relaySocket, outbound, server, client, session, context, touch } = link;
  const { stats } = context;
  // Room for the SOCKS5 prefix in front of the plaintext even with the `none` method.
  const buffer = new Uint8Array(SOCKS_UDP_PREFIX_LENGTH + UDP_BUFFER_SIZE);
  const into = buffer.subarray(SOCKS_UDP_PREFIX_LENGTH);
  const guard = receiveGuard(outbound, context);
  for (;;) {
    const datagram = await outbound.receiveNext(into, guard);
    if (!datagram) return;
    const { data, from } = datagram;
    if (unmapIpv4(from.hostname) !== server.hostname || from.port !== server.port) {
      stats.foreignDropped++;
      continue;
    }
    stats.bytesDownlink += data.length;
    let address: Address;
    let payload: Uint8Array;
    try {
      ({ address, payload } = session.open(data));
    } catch (error) {
      stats.repliesDropped++;
      context.logger.debug(`local udp: reply dropped: ${errorMessage(error)}`);
      continue;
    }
    if (client.port === undefined) {
      stats.repliesDropped++;
      continue;
    }
    touch();
    // The packet in `buffer` is no longer needed and is longer than its plaintext: reuse it.
    // (`payload` is never a view of it: opening decrypts into a new array.)
    const header = encodeAddress(address);
    buffer.fill(0, 0, SOCKS_UDP_PREFIX_LENGTH);
    buffer.set(header, SOCKS_UDP_PREFIX_LENGTH);
    buffer.set(payload, SOCKS_UDP_PREFIX_LENGTH + header.length);
    const length = SOCKS_UDP_PREFIX_LENGTH + header.length + payload.length;
    try {
      await relaySocket.send(buffer.subarray(0, length), {
        hostname: client.ip,
        port: client.port,
      });
      stats.repliesRelayed++;
    } catch (error) {
      stats.repliesDropped++;
      context.logger.debug(`local udp: send to the app failed: ${errorMessage(error)}`);
    }
  }
}

/** Reads and discards the control connection until it ends, fails or is closed under us. */
async function watchControl(reader: Pick<Duplex, "read">): Promise<void> {
  const sink = new Uint8Array(512);
  try {
    while ((await reader.read(sink)) !== null) {
      // RFC 1928 gives the control connection no further messages: ignore anything sent.
    }
  } catch (error) {
    // Closing the association (eviction, expiry, shutdown) closes the connection, which ends
    // the read; so does a reset by the app. Both simply end the association.
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

/** A guard for one receive loop of an association: errors never end it, closing does. */
function receiveGuard(socket: UdpSocket, context: { stats: UdpStats; logger: Logger }): LoopGuard {
  return new LoopGuard({
    name: "local udp receive",
    logger: context.logger,
    signal: socket.closing,
    counts: context.stats.receiveErrors,
  });
}

/** Sends a failure reply; the app may already be gone, which changes nothing. */
async function sendReply(control: Deno.TcpConn, reply: number): Promise<void> {
  try {
    await writeAll(control, encodeReply(reply));
  } catch (error) {
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

/** Resolved names one association's direct path remembers; emptied when full. */
const MAX_DIRECT_NAMES = 16;

/**
 * The direct half of an association: datagrams the router bypasses leave from this machine's
 * own sockets (one per IP family, opened on first use) and their replies come back to the app
 * with the replying address in the SOCKS5 header, as a proxied reply would. Exported for tests.
 */
export class DirectPath {
  readonly #association: SocksUdpAssociation;
  readonly #quarantine: PortQuarantine;
  readonly #sockets: { v4?: UdpSocket; v6?: UdpSocket } = {};
  readonly #names = new Map<string, string>();
  readonly #loops: Promise<void>[] = [];

  constructor(association: SocksUdpAssociation, quarantine: PortQuarantine) {
    this.#association = association;
    this.#quarantine = quarantine;
  }

  async send(link: AssociationLink, target: Address, payload: Uint8Array): Promise<void> {
    const { stats, logger } = link.context;
    try {
      const ip = await this.#resolve(target);
      // Ended while this datagram waited for its route or name: drop it rather than open a
      // socket (and quarantine its port) for an association that is gone.
      if (this.#association.closed) return;
      const socket = this.#socketFor(link, ip);
      await socket.send(payload, { hostname: ip, port: target.port });
      stats.statuses.OK++;
      stats.bytesUplink += payload.length;
    } catch (error) {
      stats.statuses[error instanceof ProtocolError ? error.code : "ERR_RELAY_TARGET"]++;
      logger.debug(`local udp: direct send failed: ${errorMessage(error)}`);
    }
  }

  async done(): Promise<void> {
    await Promise.all(this.#loops);
  }

  async #resolve(target: Address): Promise<string> {
    if (target.type !== "domain") return target.host;
    let ip = this.#names.get(target.host);
    if (ip === undefined) {
      ip = (await resolveTarget(target))[0]!;
      if (this.#names.size >= MAX_DIRECT_NAMES) this.#names.clear();
      this.#names.set(target.host, ip);
    }
    return ip;
  }

  #socketFor(link: AssociationLink, ip: string): UdpSocket {
    const family = ip.includes(":") ? "v6" : "v4";
    let socket = this.#sockets[family];
    if (!socket) {
      const any = family === "v6" ? "::" : "0.0.0.0";
      socket = bindOutside(() => UdpSocket.bind(any, 0), this.#quarantine);
      this.#sockets[family] = socket;
      this.#association.add(socket);
      this.#loops.push(directReplies(link, socket));
    }
    return socket;
  }
}

/** Target → app on a direct socket: prefix the SOCKS5 header with the sender, send to the app. */
async function directReplies(link: AssociationLink, socket: UdpSocket): Promise<void> {
  const { relaySocket, client, context, touch } = link;
  const { stats } = context;
  const buffer = new Uint8Array(UDP_BUFFER_SIZE);
  const guard = receiveGuard(socket, context);
  for (;;) {
    const datagram = await socket.receiveNext(buffer, guard);
    if (!datagram) return;
    if (client.port === undefined) {
      stats.repliesDropped++;
      continue;
    }
    touch();
    stats.bytesDownlink += datagram.data.length;
    const header = encodeAddress(
      addressFromHost(unmapIpv4(datagram.from.hostname), datagram.from.port),
    );
    const reply = new Uint8Array(SOCKS_UDP_PREFIX_LENGTH + header.length + datagram.data.length);
    reply.set(header, SOCKS_UDP_PREFIX_LENGTH);
    reply.set(datagram.data, SOCKS_UDP_PREFIX_LENGTH + header.length);
    try {
      await relaySocket.send(reply, { hostname: client.ip, port: client.port });
      stats.repliesRelayed++;
    } catch (error) {
      stats.repliesDropped++;
      context.logger.debug(`local udp: send to the app failed: ${errorMessage(error)}`);
    }
  }
}
