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
import { DirectOutbound } from "./outbound/direct.ts";
import { UpstreamSet } from "./service/upstreams.ts";
import { describeUrl, startOnlineRefresh } from "./service/online_config.ts";
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
import { loggingObserver } from "./service/observer.ts";
import { dial, runSession, type SessionSetup } from "./service/session.ts";

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

/** A running local or tunnel, with the servers it goes through (for the status page). */
export type LocalService = RunningService & { readonly upstreams: UpstreamSet };

/** Starts the SOCKS5 local listener on `config.localAddress:config.localPort`. */
export async function startLocal(
  config: LocalConfig,
  options: ServiceOptions = {},
): Promise<LocalService> {
  const logger = options.logger ?? silentLogger;
  // Keys are parsed and plugins looked up before anything is bound: a bad one fails the start.
  const upstreams = startUpstreams(config, logger, "local");
  const { method } = upstreams.best().keys;
  const context: { udp?: UdpAssociateContext } = {};
  let listener: Deno.TcpListener;
  try {
    listener = listenTcp(config.localAddress, config.localPort, config.reusePort);
  } catch (error) {
    await upstreams.close();
    throw error;
  }
  const firstUdp = upstreams.bestUdp();
  if (firstUdp) {
    const stats = createUdpStats();
    const associations = createAssociationTable({
      capacity: config.udpMaxAssociations,
      idleMs: config.udpTimeout * 1000,
      stats,
    });
    context.udp = {
      ...firstUdp,
      // A new UDP association goes to the server TCP sessions would go to now.
      pick: () => upstreams.bestUdp() ?? firstUdp,
      associations,
      stats,
      logger,
    };
  }
  const proxy = upstreams.balancer;
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
  runUpstreams(service, upstreams, config, logger);
  const names = upstreams.entries.map((entry) => entry.outbound.name).join(", ");
  logger.info(
    `local ${config.protocol ?? "mixed"} proxy (${
      config.protocol === "http"
        ? "HTTP"
        : config.protocol === "socks"
        ? "SOCKS5, SOCKS4"
        : "SOCKS5, SOCKS4, HTTP"
    }) listening on ${formatAddress(addressFromHost(service.addr.hostname, service.addr.port))}, ` +
      `server${upstreams.entries.length > 1 ? "s" : ""} ${names} (${method.name})` +
      (config.onlineConfig ? `, online config from ${describeUrl(config.onlineConfig.url)}` : "") +
      (config.acl ? ", with an ACL" : "") +
      (users ? `, ${users.size} user${users.size === 1 ? "" : "s"}` : ""),
  );
  return { ...service, upstreams };
}

/**
 * The upstream servers of a client role: `servers`, or the one top-level server, with the
 * balancer's check settings.
 */
export function startUpstreams(config: LocalConfig, logger: Logger, role: string): UpstreamSet {
  const servers = config.servers ?? [{
    server: config.server,
    serverPort: config.serverPort,
    method: config.method,
    password: config.password,
    ...(config.plugin ? { plugin: config.plugin } : {}),
  }];
  return new UpstreamSet(servers, {
    mode: config.mode,
    noDelay: config.noDelay,
    logger,
    checkIntervalMs: (config.balancer?.checkIntervalS ?? 30) * 1000,
    checkTarget: parseCheckTarget(config.balancer?.checkTarget ?? DEFAULT_CHECK_TARGET),
    onServerSkew: (skew) => logServerSkew(logger, role, skew),
  });
}

/**
 * Starts the servers' health checks and the online config refresh with `service`, and ends
 * them (plugins included) when it closes.
 */
export function runUpstreams(
  service: RunningService,
  upstreams: UpstreamSet,
  config: LocalConfig,
  logger: Logger,
): void {
  upstreams.start();
  const refresh = config.onlineConfig ? startOnline(config, upstreams, logger) : undefined;
  const stopUpstreams = async () => {
    await refresh?.close();
    await upstreams.close();
  };
  const close = service.close;
  service.close = async () => {
    await close();
    await stopUpstreams();
  };
  service.closed.then(stopUpstreams);
}

/** Refreshes the servers from the online config; a list that cannot be used keeps the last. */
function startOnline(config: LocalConfig, upstreams: UpstreamSet, logger: Logger) {
  const online = config.onlineConfig!;
  return startOnlineRefresh({
    url: online.url,
    intervalMs: online.updateIntervalS * 1000,
    ...(online.allowInsecure ? { allowInsecure: true } : {}),
    logger,
    apply: (servers) => {
      const { added, removed } = upstreams.replace(servers);
      if (added + removed > 0) {
        logger.info(`servers changed: ${added} added, ${removed} removed`);
      }
    },
  });
}

/** Says so when a 2022 server's clock is off: refused beyond ±30 s, worth a look from 10 s. */
export function logServerSkew(logger: Logger, role: string, skew: number): void {
  if (Math.abs(skew) > MAX_TIMESTAMP_SKEW) {
    logger.info(`${role}: server clock skew of ${skew} s exceeds ±${MAX_TIMESTAMP_SKEW} s`);
  } else if (Math.abs(skew) >= NOTABLE_SKEW_S) {
    logger.debug(`${role}: server clock skew of ${skew} s`);
  }
}
