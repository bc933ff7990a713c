/**
 * The local role: a proxy for applications on this machine. Each accepted connection runs the
 * session line (service/session.ts): the inbound reads the application's request, the router
 * picks the outbound (the Shadowsocks server), the outbound connects, the inbound replies, and
 * the relay runs: uplink = app → server (encrypting), downlink = server → app (decrypting).
 * The first write to the server carries salt, request header and the app's first bytes
 * (outbound/shadowsocks.ts). UDP ASSOCIATE, when `mode` has UDP, is relayed per datagram
 * (relay/socks_udp_associate.ts).
 * @module
 */
import type { LocalConfig } from "./config/types.ts";
import { Socks5Inbound } from "./inbound/socks5.ts";
import { ShadowsocksOutbound } from "./outbound/shadowsocks.ts";
import { addressFromHost, formatAddress } from "./protocol/address.ts";
import { MAX_TIMESTAMP_SKEW } from "./protocol/aead2022_time.ts";
import { fixedRouter } from "./route/router.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { listenTcp } from "./relay/listen.ts";
import { type RunningService, serveConnections, type ServiceOptions } from "./relay/service.ts";
import { createAssociationTable, type UdpAssociateContext } from "./relay/socks_udp_associate.ts";
import { createUdpStats } from "./relay/udp_stats.ts";
import { clientKeys } from "./relay/upstream.ts";
import { loggingObserver } from "./service/observer.ts";
import { runSession, type SessionSetup } from "./service/session.ts";

export type { RunningService, ServiceOptions };

/** A 2022 server clock this far off (seconds) still passes but earns a debug line. */
const NOTABLE_SKEW_S = 10;

/** Starts the SOCKS5 local listener on `config.localAddress:config.localPort`. */
// deno-lint-ignore require-await -- async so that a bind or key failure is a rejection, not a throw
export async function startLocal(
  config: LocalConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  // Keys are parsed before anything is bound: a bad one fails the start.
  const { method, framings, udpCipher } = clientKeys(config);
  const logger = options.logger ?? silentLogger;
  const context: { udp?: UdpAssociateContext } = {};
  const listener = listenTcp(config.localAddress, config.localPort);
  if (udpCipher) {
    const stats = createUdpStats();
    const associations = createAssociationTable({
      capacity: config.udpMaxAssociations,
      idleMs: config.udpTimeout * 1000,
      stats,
    });
    context.udp = {
      cipher: udpCipher,
      server: config.server,
      serverPort: config.serverPort,
      associations,
      stats,
      logger,
    };
  }
  const outbound = new ShadowsocksOutbound(
    { host: config.server, port: config.serverPort, framings, noDelay: config.noDelay },
    (skew) => logServerSkew(logger, "local", skew),
  );
  const setup: SessionSetup = {
    inbound: new Socks5Inbound({
      tcp: config.mode !== "udp_only",
      ...(context.udp ? { udp: context.udp } : {}),
    }),
    router: fixedRouter(outbound),
    observer: loggingObserver("local", logger),
    handshakeMs: config.handshakeTimeout * 1000,
    idleMs: config.timeout * 1000,
    noDelay: config.noDelay,
  };
  const tcp = serveConnections(
    listener,
    (conn, signal, countBytes) => runSession(conn, setup, signal, countBytes),
    { ...options, logger, name: "local" },
  );
  const udp = context.udp;
  // Associations end with their control connections; the table only has its timer left.
  const service: RunningService = udp
    ? {
      ...tcp,
      udpStats: udp.stats,
      closed: tcp.closed.then(() => udp.associations.close()),
      close: () => tcp.close().then(() => udp.associations.close()),
    }
    : tcp;
  logger.info(
    `local SOCKS5 listening on ${service.addr.hostname}:${service.addr.port}, server ${
      formatAddress(addressFromHost(config.server, config.serverPort))
    } (${method.name})`,
  );
  return service;
}

/** Says so when a 2022 server's clock is off: refused beyond ±30 s, worth a look from 10 s. */
export function logServerSkew(logger: Logger, role: string, skew: number): void {
  if (Math.abs(skew) > MAX_TIMESTAMP_SKEW) {
    logger.info(`${role}: server clock skew of ${skew} s exceeds ±${MAX_TIMESTAMP_SKEW} s`);
  } else if (Math.abs(skew) >= NOTABLE_SKEW_S) {
    logger.debug(`${role}: server clock skew of ${skew} s`);
  }
}
