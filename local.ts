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
import { HttpInbound } from "./inbound/http.ts";
import { MixedInbound } from "./inbound/mixed.ts";
import { Socks4Inbound } from "./inbound/socks4.ts";
import { Socks5Inbound } from "./inbound/socks5.ts";
import { Balancer } from "./outbound/balancer.ts";
import { DirectOutbound } from "./outbound/direct.ts";
import { ShadowsocksOutbound } from "./outbound/shadowsocks.ts";
import { type Address, addressFromHost, formatAddress } from "./protocol/address.ts";
import { parseHostPort } from "./protocol/host_port.ts";
import { AccessControl } from "./route/acl.ts";
import { resolveTarget } from "./relay/direct.ts";
import { MAX_TIMESTAMP_SKEW } from "./protocol/aead2022_time.ts";
import { aclDecision, aclRouter, fixedRouter } from "./route/router.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { listenTcp } from "./relay/listen.ts";
import { type RunningService, serveConnections, type ServiceOptions } from "./relay/service.ts";
import { createAssociationTable, type UdpAssociateContext } from "./relay/socks_udp_associate.ts";
import { createUdpStats } from "./relay/udp_stats.ts";
import { clientKeys } from "./relay/upstream.ts";
import { loggingObserver } from "./service/observer.ts";
import { dial, runSession, type SessionSetup } from "./service/session.ts";
import { findPlugin, startClientPlugin } from "./service/plugin.ts";

export type { RunningService, ServiceOptions };

/** A 2022 server clock this far off (seconds) still passes but earns a debug line. */
const NOTABLE_SKEW_S = 10;
/**
 * Where health checks of several servers send a small HTTP request by default (a host that
 * answers quickly from most networks; `balancer.check_target` changes it).
 */
const DEFAULT_CHECK_TARGET = "www.gstatic.com:80";

function parseCheckTarget(text: string): Address {
  return parseHostPort(text);
}

/** Starts the SOCKS5 local listener on `config.localAddress:config.localPort`. */
// deno-lint-ignore require-await -- async so that a bind or key failure is a rejection, not a throw
export async function startLocal(
  config: LocalConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  // Keys are parsed before anything is bound: a bad one fails the start.
  const { method, framings, udpCipher } = clientKeys(config);
  if (config.plugin && findPlugin(config.plugin.name) === undefined) {
    // Before anything is bound: a missing plugin is a start failure, not a silent plain run.
    throw new Error(
      `Plugin "${config.plugin.name}" not found on PATH: install it or give its path`,
    );
  }
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
  const servers = config.servers ?? [config];
  const keysOf = servers.map((server, i) =>
    i === 0 ? { framings, udpCipher } : clientKeys({ ...config, ...server })
  );
  // With a SIP003 plugin, TCP goes to the plugin's loopback port, which carries it to the server.
  const plugins = config.plugin
    ? servers.map((server) =>
      startClientPlugin(config.plugin!, { host: server.server, port: server.serverPort }, logger)
    )
    : undefined;
  const outbounds = servers.map((server, i) => {
    const keys = keysOf[i]!;
    return new ShadowsocksOutbound(
      {
        host: plugins?.[i]?.host ?? server.server,
        port: plugins?.[i]?.port ?? server.serverPort,
        framings: keys.framings,
        noDelay: config.noDelay,
      },
      (skew) => logServerSkew(logger, "local", skew),
    );
  });
  const balancer = outbounds.length > 1
    ? new Balancer(outbounds, {
      logger,
      intervalMs: (config.balancer?.checkIntervalS ?? 30) * 1000,
      checkTarget: parseCheckTarget(config.balancer?.checkTarget ?? DEFAULT_CHECK_TARGET),
    })
    : undefined;
  const proxy = balancer ?? outbounds[0]!;
  if (balancer && context.udp) {
    // A new UDP association goes to the server TCP sessions would go to now.
    context.udp.pick = () => {
      const i = outbounds.indexOf(balancer.ranked()[0]!.outbound as ShadowsocksOutbound);
      return {
        cipher: keysOf[i]!.udpCipher!,
        server: servers[i]!.server,
        serverPort: servers[i]!.serverPort,
      };
    };
  }
  const acl = config.acl ? new AccessControl(config.acl) : undefined;
  const resolve = (name: string) => resolveTarget({ type: "domain", host: name, port: 0 });
  const router = acl
    ? aclRouter(acl, {
      proxy,
      // Bypassed targets are the user's own network: private addresses are the point.
      direct: new DirectOutbound({
        allowPrivateTargets: true,
        ipv6First: false,
        noDelay: config.noDelay,
      }),
    }, resolve)
    : fixedRouter(proxy);
  // UDP follows the same decision per datagram target.
  if (acl && context.udp) context.udp.route = (target) => aclDecision(acl, target, resolve);
  const users = config.users ? new Map(config.users.map((u) => [u.name, u.password])) : undefined;
  const handshakeMs = config.handshakeTimeout * 1000;
  const idleMs = config.timeout * 1000;
  const socks5 = new Socks5Inbound({
    tcp: config.mode !== "udp_only",
    ...(context.udp ? { udp: context.udp } : {}),
    ...(users ? { users } : {}),
  });
  const http = new HttpInbound({
    ...(users ? { users } : {}),
    dial: (target, user, signal) => dial(router, target, user, { signal }),
    handshakeMs,
    idleMs,
  });
  const socks4 = new Socks4Inbound({ authRequired: users !== undefined });
  const setup: SessionSetup = {
    inbound: new MixedInbound({ socks5, socks4, http }, config.protocol ?? "mixed"),
    router,
    observer: loggingObserver("local", logger),
    handshakeMs,
    idleMs,
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
  if (balancer) {
    balancer.start();
    service.closed.then(() => balancer.close());
  }
  if (plugins) {
    const close = service.close;
    service.close = async () => {
      await close();
      await Promise.all(plugins.map(({ plugin }) => plugin.close()));
    };
    service.closed.then(() => Promise.all(plugins.map(({ plugin }) => plugin.close())));
  }
  const names = outbounds.map((o) => o.name).join(", ");
  logger.info(
    `local ${config.protocol ?? "mixed"} proxy (${
      config.protocol === "http"
        ? "HTTP"
        : config.protocol === "socks"
        ? "SOCKS5, SOCKS4"
        : "SOCKS5, SOCKS4, HTTP"
    }) listening on ${formatAddress(addressFromHost(service.addr.hostname, service.addr.port))}, ` +
      `server${outbounds.length > 1 ? "s" : ""} ${names} (${method.name})` +
      (config.acl ? ", with an ACL" : "") +
      (users ? `, ${users.size} user${users.size === 1 ? "" : "s"}` : ""),
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
