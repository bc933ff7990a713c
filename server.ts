/**
 * The server role: accept Shadowsocks connections, authenticate the first chunk, read the
 * target address, connect to it directly and relay.
 *
 * Stages of one session:
 *   1. read salt + first chunk (handshake deadline running) — bad tag → probe handling
 *   2. replay check on the salt (only once the chunk authenticated)
 *   3. decode the target address from the decrypted stream (may span chunks)
 *   4. policy check, resolve, connect
 *   5. relay: uplink = client → target (decrypting), downlink = target → client (encrypting)
 *
 * Probe handling: after an authentication or parse failure the server sends nothing and does not
 * close early; it reads and discards until the client closes or the handshake deadline passes.
 *
 * UDP (`mode` `tcp_and_udp` or `udp_only`) listens on the same port number; each datagram is
 * opened, its target checked against the same policy and relayed through a per-client NAT
 * association (relay/datagram_service.ts). Invalid datagrams are dropped and counted, never
 * answered.
 * @module
 */
import type { ServerConfig } from "./config/types.ts";
import { evpBytesToKey } from "./crypto/kdf.ts";
import { findMethod, type MethodInfo } from "./crypto/methods.ts";
import { type Address, decodeAddress, formatAddress } from "./protocol/address.ts";
import { ProtocolError, type SessionStatus } from "./protocol/errors.ts";
import { ReplayFilter } from "./protocol/replay_filter.ts";
import { assertUdpMethod } from "./protocol/udp_packet.ts";
import { serveDatagrams } from "./relay/datagram_service.ts";
import { Deadline } from "./relay/deadline.ts";
import { connectDirect } from "./relay/direct.ts";
import { closeQuietly, concatBytes, writeAll } from "./relay/io.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { relay } from "./relay/pipe.ts";
import {
  type ByteCounter,
  combineServices,
  type RunningService,
  serveConnections,
  type ServiceOptions,
  type UdpService,
} from "./relay/service.ts";
import { ShadowsocksStream } from "./relay/shadowsocks_stream.ts";
import { serverUdpCodec } from "./relay/shadowsocks_udp.ts";
import { UdpSocket } from "./relay/udp_socket.ts";

export type { RunningService, ServiceOptions };

/** Longest address header: ATYP + length + 255-byte name + port. */
const MAX_ADDRESS_LENGTH = 1 + 1 + 255 + 2;
/** Bytes discarded per read while draining a failed handshake. */
const DRAIN_BUFFER_SIZE = 4096;

/** What a server session needs, fixed for the listener's lifetime. */
interface ServerContext {
  config: ServerConfig;
  method: MethodInfo;
  masterKey: Uint8Array;
  replayFilter: ReplayFilter;
  logger: Logger;
}

/**
 * Starts a Shadowsocks server on `config.address:config.port`: TCP, UDP or both by `mode`. With
 * both and port 0, UDP binds the port number TCP got. Rejects when that UDP port is taken.
 */
export function startServer(
  config: ServerConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  const method = findMethod(config.method);
  if (!method) throw new RangeError(`Invalid method "${config.method}"`);
  if (config.mode !== "tcp_only") assertUdpMethod(method);
  const logger = options.logger ?? silentLogger;
  const context: ServerContext = {
    config,
    method,
    masterKey: evpBytesToKey(config.password, method.keySize),
    replayFilter: new ReplayFilter(),
    logger,
  };
  let tcp: RunningService | undefined;
  if (config.mode !== "udp_only") {
    const listener = Deno.listen({ hostname: config.address, port: config.port });
    tcp = serveConnections(
      listener,
      (conn, signal, countBytes) => serveSession(conn, context, signal, countBytes),
      { ...options, logger, name: "server" },
    );
  }
  let udp: UdpService | undefined;
  if (config.mode !== "tcp_only") {
    let socket: UdpSocket;
    try {
      socket = UdpSocket.bind(config.address, tcp?.addr.port ?? config.port);
    } catch (error) {
      if (!tcp) throw error;
      return tcp.close().then(() => Promise.reject(error));
    }
    udp = serveDatagrams(socket, serverUdpCodec(method, context.masterKey), {
      name: "server",
      logger,
      maxAssociations: config.udpMaxAssociations,
      idleTimeoutMs: config.udpTimeout * 1000,
      allowPrivateTargets: config.allowPrivateTargets,
      ipv6First: config.ipv6First,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  const service = combineServices(tcp, udp);
  const transports = [tcp && "tcp", udp && "udp"].filter(Boolean).join(" and ");
  logger.info(
    `server listening on ${formatHostPort(service.addr)} (${method.name}, ${transports})`,
  );
  return Promise.resolve(service);
}

async function serveSession(
  conn: Deno.TcpConn,
  context: ServerContext,
  signal: AbortSignal,
  countBytes: ByteCounter,
): Promise<SessionStatus> {
  const { config, logger } = context;
  const peer = formatHostPort(conn.remoteAddr);
  const started = Date.now();
  const deadline = new Deadline(config.handshakeTimeout * 1000, () => closeQuietly(conn));
  const stream = new ShadowsocksStream(conn, context.method, context.masterKey, {
    onPeerSalt: (salt) => {
      if (context.replayFilter.checkAndAdd(salt)) {
        throw new ProtocolError("ERR_REPLAY", "Salt seen before: replayed connection");
      }
    },
    onOwnSalt: (salt) => context.replayFilter.addOwn(salt),
  });

  const finish = (status: SessionStatus, detail: string) => {
    const line = `server ${peer} ${status} ${detail} (${Date.now() - started} ms)`;
    if (status === "OK" || status === "ERR_TIMEOUT" || status.startsWith("ERR_RELAY")) {
      logger.debug(line);
    } else {
      logger.info(line);
    }
    return status;
  };

  let address: Address;
  let initialPayload: Uint8Array;
  try {
    ({ address, initialPayload } = await readTargetAddress(stream));
  } catch (error) {
    if (deadline.expired) return finish("ERR_TIMEOUT", "handshake deadline passed");
    if (!(error instanceof ProtocolError)) {
      deadline.clear();
      return finish("ERR_RELAY_CLIENT", `handshake read failed: ${errorMessage(error)}`);
    }
    await drainUntilClosed(conn);
    deadline.clear();
    return finish(error.code, error.message);
  }

  let target: Deno.TcpConn;
  try {
    target = await connectDirect(address, {
      allowPrivateTargets: config.allowPrivateTargets,
      ipv6First: config.ipv6First,
      noDelay: config.noDelay,
      signal: AbortSignal.any([signal, AbortSignal.timeout(deadline.remainingMs)]),
    });
  } catch (error) {
    deadline.clear();
    const status = error instanceof ProtocolError ? error.code : "ERR_CONNECT";
    return finish(status, errorMessage(error));
  }
  deadline.clear();
  conn.setNoDelay(config.noDelay);

  try {
    if (initialPayload.length > 0) await writeAll(target, initialPayload);
  } catch (error) {
    closeQuietly(target);
    return finish("ERR_RELAY_TARGET", errorMessage(error));
  }
  countBytes("uplink", initialPayload.length);
  const status = await relay(stream, target, {
    idleTimeoutMs: config.timeout * 1000,
    signal,
    onBytes: countBytes,
  });
  return finish(status, formatAddress(address));
}

/** Reads decrypted chunks until the address header is complete. */
async function readTargetAddress(
  stream: ShadowsocksStream,
): Promise<{ address: Address; initialPayload: Uint8Array }> {
  let buffered: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = await stream.readChunk();
    if (chunk === null) {
      throw new ProtocolError("ERR_READ_ADDRESS", "Stream ended before the target address");
    }
    buffered = buffered.length === 0 ? chunk : concatBytes(buffered, chunk);
    const decoded = decodeAddress(buffered);
    if (decoded) {
      return { address: decoded.address, initialPayload: buffered.subarray(decoded.length) };
    }
    if (buffered.length >= MAX_ADDRESS_LENGTH) {
      throw new ProtocolError("ERR_READ_ADDRESS", "Address header too long");
    }
  }
}

/** Reads and discards until the client closes or the connection is closed under us. */
async function drainUntilClosed(conn: Deno.TcpConn): Promise<void> {
  const sink = new Uint8Array(DRAIN_BUFFER_SIZE);
  try {
    while ((await conn.read(sink)) !== null) {
      // discard
    }
  } catch (error) {
    // The deadline closing the connection ends the drain; that is the expected way out.
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

function formatHostPort(addr: Deno.Addr): string {
  const net = addr as Deno.NetAddr;
  return net.hostname.includes(":")
    ? `[${net.hostname}]:${net.port}`
    : `${net.hostname}:${net.port}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
