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
import { logServerSkew } from "./local.ts";
import { ShadowsocksOutbound } from "./outbound/shadowsocks.ts";
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
import { clientKeys } from "./relay/upstream.ts";
import { fixedRouter } from "./route/router.ts";
import { loggingObserver } from "./service/observer.ts";
import { runSession, type SessionSetup } from "./service/session.ts";
import { findPlugin, startClientPlugin } from "./service/plugin.ts";

export type { RunningService, ServiceOptions };

/**
 * Starts the tunnel on `config.localAddress:config.localPort`, forwarding to
 * `config.tunnelHost:config.tunnelPort`: TCP, UDP or both on one port number (with port 0, one
 * free for both). Rejects when the port is taken.
 */
// deno-lint-ignore require-await -- async so that a bind or key failure is a rejection, not a throw
export async function startTunnel(
  config: TunnelConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  // Keys are parsed before anything is bound: a bad one fails the start.
  const { method, framings, udpCipher } = clientKeys(config);
  const logger = options.logger ?? silentLogger;
  const target = addressFromHost(config.tunnelHost, config.tunnelPort);
  if (config.plugin && findPlugin(config.plugin.name) === undefined) {
    throw new Error(
      `Plugin "${config.plugin.name}" not found on PATH: install it or give its path`,
    );
  }
  let plugin: ReturnType<typeof startClientPlugin> | undefined;
  const { listener, socket } = bindTcpAndUdp(config.localAddress, config.localPort, {
    tcp: config.mode !== "udp_only",
    udp: udpCipher !== undefined,
  });
  let tcp: RunningService | undefined;
  if (listener) {
    // With a SIP003 plugin, TCP goes to the plugin's loopback port, which carries it on.
    if (config.plugin) {
      plugin = startClientPlugin(config.plugin, {
        host: config.server,
        port: config.serverPort,
      }, logger);
    }
    const outbound = new ShadowsocksOutbound(
      {
        host: plugin?.host ?? config.server,
        port: plugin?.port ?? config.serverPort,
        framings,
        noDelay: config.noDelay,
      },
      (skew) => logServerSkew(logger, "tunnel", skew),
    );
    const setup: SessionSetup = {
      inbound: new TunnelInbound(target),
      router: fixedRouter(outbound),
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
  if (udpCipher && socket) {
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
  if (plugin) {
    const running = plugin.plugin;
    const close = service.close;
    service.close = async () => {
      await close();
      await running.close();
    };
    service.closed.then(() => running.close());
  }
  const transports = [tcp && "tcp", udp && "udp"].filter(Boolean).join(" and ");
  logger.info(
    `tunnel listening on ${service.addr.hostname}:${service.addr.port} (${transports}) to ${
      formatAddress(target)
    }, server ${formatAddress(addressFromHost(config.server, config.serverPort))} (${method.name})`,
  );
  return service;
}
