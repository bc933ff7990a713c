/**
 * The tunnel role, like `ss-tunnel`: a local port forwarded to one fixed target through the
 * Shadowsocks server, over TCP, UDP or both by `mode` (UDP on the same port number). The usual
 * way to carry DNS: `ssdeno tunnel -u -l 5353 -L 1.1.1.1:53 ...`.
 *
 * Stages of one TCP session:
 *   1. accept; connect to the Shadowsocks server (handshake deadline)
 *   2. first write to the server: salt + request header (the fixed target) + the app's first
 *      bytes, in one write (2022: random padding instead when the app is silent for 20 ms)
 *   3. relay: uplink = app → server (encrypting), downlink = server → app (decrypting)
 *
 * UDP: each app address gets its own association (relay/datagram_service.ts) and its own client
 * session (2022: its own session ID); its datagrams are sealed with the fixed target address
 * and sent to the server's UDP port, and the payload of the server's replies goes back to it.
 * @module
 */
import type { TunnelConfig } from "./config/types.ts";
import { logServerSkew } from "./local.ts";
import { type Address, addressFromHost, formatAddress } from "./protocol/address.ts";
import { errorMessage, type SessionStatus } from "./protocol/errors.ts";
import type { ClientFramings } from "./protocol/session_framings.ts";
import { BufferedConn } from "./relay/buffered_conn.ts";
import { serveDatagrams } from "./relay/datagram_service.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { listenTcp } from "./relay/listen.ts";
import {
  type ByteCounter,
  combineServices,
  type RunningService,
  serveConnections,
  type ServiceOptions,
  type UdpService,
} from "./relay/service.ts";
import { ShadowsocksStream } from "./relay/shadowsocks_stream.ts";
import { tunnelUdpCodec } from "./relay/shadowsocks_udp.ts";
import { UdpSocket } from "./relay/udp_socket.ts";
import { clientKeys, connectUpstream, relayUpstream } from "./relay/upstream.ts";
import { Deadline } from "./relay/deadline.ts";

export type { RunningService, ServiceOptions };

interface TunnelContext {
  config: TunnelConfig;
  /** The server's keys: one framing per session, always asking for `target`. */
  framings: ClientFramings;
  target: Address;
  logger: Logger;
}

/**
 * Starts the tunnel on `config.localAddress:config.localPort`, forwarding to
 * `config.tunnelHost:config.tunnelPort`. With TCP and UDP on port 0, UDP binds the port number
 * TCP got. Rejects when that UDP port is taken.
 */
export async function startTunnel(
  config: TunnelConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  // Keys are parsed before anything is bound: a bad one fails the start.
  const { method, framings, udpCipher } = clientKeys(config);
  const logger = options.logger ?? silentLogger;
  const target = addressFromHost(config.tunnelHost, config.tunnelPort);
  const context: TunnelContext = { config, framings, target, logger };
  let tcp: RunningService | undefined;
  if (config.mode !== "udp_only") {
    const listener = listenTcp(config.localAddress, config.localPort);
    tcp = serveConnections(
      listener,
      (conn, signal, countBytes) => serveTunnelSession(conn, context, signal, countBytes),
      { ...options, logger, name: "tunnel" },
    );
  }
  let udp: UdpService | undefined;
  if (udpCipher) {
    let socket: UdpSocket;
    try {
      socket = UdpSocket.bind(config.localAddress, tcp?.addr.port ?? config.localPort);
    } catch (error) {
      if (!tcp) throw error;
      await tcp.close();
      throw error;
    }
    const server = addressFromHost(config.server, config.serverPort);
    udp = serveDatagrams(socket, tunnelUdpCodec(udpCipher, target, server), {
      name: "tunnel",
      logger,
      maxAssociations: config.udpMaxAssociations,
      idleTimeoutMs: config.udpTimeout * 1000,
      // The only destination is our own Shadowsocks server, which may well be on loopback.
      allowPrivateTargets: true,
      ipv6First: false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  const service = combineServices(tcp, udp);
  const transports = [tcp && "tcp", udp && "udp"].filter(Boolean).join(" and ");
  logger.info(
    `tunnel listening on ${service.addr.hostname}:${service.addr.port} (${transports}) to ${
      formatAddress(target)
    }, server ${formatAddress(addressFromHost(config.server, config.serverPort))} (${method.name})`,
  );
  return service;
}

async function serveTunnelSession(
  conn: Deno.TcpConn,
  context: TunnelContext,
  signal: AbortSignal,
  countBytes: ByteCounter,
): Promise<SessionStatus> {
  const { config, logger } = context;
  const started = Date.now();
  const finish = (status: SessionStatus, detail: string) => {
    const line = `tunnel ${conn.remoteAddr.hostname}:${conn.remoteAddr.port} ${status} ${detail} (${
      Date.now() - started
    } ms)`;
    if (status === "ERR_CONNECT") logger.info(line);
    else logger.debug(line);
    return status;
  };

  let serverConn: Deno.TcpConn;
  const deadline = new Deadline(config.handshakeTimeout * 1000, () => {});
  try {
    serverConn = await connectUpstream(config, deadline.linkedSignal(signal));
  } catch (error) {
    return finish("ERR_CONNECT", `cannot reach server: ${errorMessage(error)}`);
  } finally {
    deadline.clear();
  }
  conn.setNoDelay(config.noDelay);

  const client = new BufferedConn(conn);
  const stream = new ShadowsocksStream(
    serverConn,
    context.framings.session(context.target, {
      onServerSkew: (skew) => logServerSkew(logger, "tunnel", skew),
    }),
  );
  const { status, detail } = await relayUpstream(client, stream, {
    idleTimeoutMs: config.timeout * 1000,
    signal,
    countBytes,
  });
  return finish(status, detail ?? formatAddress(context.target));
}
