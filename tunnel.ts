/**
 * The tunnel role, like `ss-tunnel`: a local port forwarded to one fixed target through the
 * Shadowsocks server, over TCP, UDP or both by `mode` (UDP on the same port number). The usual
 * way to carry DNS: `ssdeno tunnel -u -l 5353 -L 1.1.1.1:53 ...`.
 *
 * A TCP session runs the session line (service/session.ts) with the tunnel inbound (the fixed
 * target; inbound/tunnel.ts) and the Shadowsocks outbound: the first write to the server carries
 * salt, request header and the app's first bytes (2022: random padding instead when the app is
 * silent for 20 ms); then uplink = app → server, downlink = server → app.
 *
 * UDP: each app address gets its own association (relay/datagram_service.ts) and its own client
 * session (2022: its own session ID); its datagrams are sealed with the fixed target address
 * and sent to the server's UDP port, and the payload of the server's replies goes back to it.
 * @module
 */
import type { TunnelConfig } from "./config/types.ts";
import { TunnelInbound } from "./inbound/tunnel.ts";
import { type LocalService, runUpstreams, startUpstreams } from "./local.ts";
import { addressFromHost, formatAddress } from "./protocol/address.ts";
import { serveDatagrams } from "./relay/datagram_service.ts";
import { silentLogger } from "./relay/log.ts";
import { bindTcpAndUdp } from "./relay/listen.ts";
import {
  combineServices,
  type RunningService,
  serveConnections,
  type ServiceOptions,
  type UdpService,
} from "./relay/service.ts";
import { tunnelUdpCodec } from "./relay/shadowsocks_udp.ts";
import { fixedRouter } from "./route/router.ts";
import { loggingObserver } from "./service/observer.ts";
import { runSession, type SessionSetup } from "./service/session.ts";

export type { RunningService, ServiceOptions };

/**
 * Starts the tunnel on `config.localAddress:config.localPort`, forwarding to
 * `config.tunnelHost:config.tunnelPort`: TCP, UDP or both on one port number (with port 0, one
 * free for both). Rejects when the port is taken.
 */
export async function startTunnel(
  config: TunnelConfig,
  options: ServiceOptions = {},
): Promise<LocalService> {
  const logger = options.logger ?? silentLogger;
  const target = addressFromHost(config.tunnelHost, config.tunnelPort);
  // Keys are parsed and plugins looked up before anything is bound: a bad one fails the start.
  const upstreams = startUpstreams(config, logger, "tunnel");
  const { method } = upstreams.best().keys;
  const firstUdp = upstreams.bestUdp();
  let bound;
  try {
    bound = bindTcpAndUdp(config.localAddress, config.localPort, {
      reusePort: config.reusePort ?? false,
      tcp: config.mode !== "udp_only",
      udp: firstUdp !== undefined,
    });
  } catch (error) {
    await upstreams.close();
    throw error;
  }
  const { listener, socket } = bound;
  let tcp: RunningService | undefined;
  if (listener) {
    const setup: SessionSetup = {
      inbound: new TunnelInbound(target),
      router: fixedRouter(upstreams.balancer),
      observer: loggingObserver("tunnel", logger),
      handshakeMs: config.handshakeTimeout * 1000,
      idleMs: config.timeout * 1000,
      noDelay: config.noDelay,
    };
    tcp = serveConnections(
      listener,
      (conn, signal, countBytes) => runSession(conn, setup, signal, countBytes),
      { ...options, logger, name: "tunnel" },
    );
  }
  let udp: UdpService | undefined;
  if (firstUdp && socket) {
    // Each new association goes to the server TCP sessions would go to now.
    const pick = () => {
      const { cipher, server, serverPort } = upstreams.bestUdp() ?? firstUdp;
      return { cipher, server: addressFromHost(server, serverPort) };
    };
    udp = serveDatagrams(socket, tunnelUdpCodec(pick, target), {
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
  runUpstreams(service, upstreams, config, logger);
  const transports = [tcp && "tcp", udp && "udp"].filter(Boolean).join(" and ");
  logger.info(
    `tunnel listening on ${service.addr.hostname}:${service.addr.port} (${transports}) to ${
      formatAddress(target)
    }, server${upstreams.entries.length > 1 ? "s" : ""} ${
      upstreams.entries.map((entry) => entry.outbound.name).join(", ")
    } (${method.name})`,
  );
  return { ...service, upstreams };
}
