/**
 * The Shadowsocks servers of a client role (local, tunnel) as one outbound: each server's keys,
 * its SIP003 plugin when it has one, and the balancer that orders them. The list can be replaced
 * while running (SIP008 online config): a server whose settings did not change keeps its keys,
 * plugin process and health; a new one is started; a dropped one gets no new sessions and its
 * plugin is ended.
 * @module
 */
import type { UpstreamServer } from "../config/types.ts";
import { type Address, addressFromHost, formatAddress } from "../protocol/address.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";
import type { UdpClientCipher } from "../relay/shadowsocks_udp.ts";
import { type ClientKeys, clientKeys } from "../relay/upstream.ts";
import { findPlugin, type RunningPlugin, startClientPlugin } from "./plugin.ts";
import { Balancer } from "../outbound/balancer.ts";
import { ShadowsocksOutbound } from "../outbound/shadowsocks.ts";

/** One server of the set, ready to dial. */
export interface Upstream {
  readonly server: UpstreamServer;
  readonly keys: ClientKeys;
  readonly outbound: ShadowsocksOutbound;
  readonly plugin: RunningPlugin | undefined;
  /** The settings that make two entries the same server (never logged: holds the password). */
  readonly identity: string;
}

export interface UpstreamSetOptions {
  /** `tcp_only` leaves the servers without a UDP cipher. */
  mode: string;
  noDelay: boolean;
  logger: Logger;
  /** Balancer health checks: where to, and how often (only with two servers or more). */
  checkTarget: Address;
  checkIntervalMs: number;
  /** A 2022 server's clock offset, seen in a response. */
  onServerSkew: (skew: number) => void;
}

/** What the UDP side needs of the server a new association goes to. */
export interface UdpUpstream {
  cipher: UdpClientCipher;
  server: string;
  serverPort: number;
}

export class UpstreamSet {
  readonly balancer: Balancer;
  readonly #options: UpstreamSetOptions;
  #entries: Upstream[];

  /**
   * Parses every server's keys and starts their plugins. Throws, before any plugin starts, when
   * a key is bad or a plugin is missing: at startup that is a configuration mistake.
   */
  constructor(servers: readonly UpstreamServer[], options: UpstreamSetOptions) {
    if (servers.length === 0) throw new RangeError("No Shadowsocks server to go through");
    this.#options = options;
    const keys = servers.map((server) => this.#check(server));
    this.#entries = servers.map((server, i) => this.#start(server, keys[i]!));
    this.balancer = new Balancer(this.#entries.map((entry) => entry.outbound), {
      logger: options.logger,
      intervalMs: options.checkIntervalMs,
      checkTarget: options.checkTarget,
    });
  }

  get entries(): readonly Upstream[] {
    return this.#entries;
  }

  /** The server sessions would go to now: the first of the balancer's ranking. */
  best(): Upstream {
    const first = this.balancer.ranked()[0]?.outbound;
    return this.#entries.find((entry) => entry.outbound === first) ?? this.#entries[0]!;
  }

  /** The UDP endpoint of the best server (undefined when the set is TCP only). */
  bestUdp(): UdpUpstream | undefined {
    const { keys, server, outbound, plugin } = this.best();
    if (!keys.udpCipher) return undefined;
    // SIP003u: the plugin carries UDP too, on the loopback port it takes TCP on.
    return plugin && server.plugin?.mode === "tcp_and_udp"
      ? { cipher: keys.udpCipher, server: outbound.server.host, serverPort: outbound.server.port }
      : { cipher: keys.udpCipher, server: server.server, serverPort: server.serverPort };
  }

  /**
   * Makes `servers` the list. A server that cannot be used (bad key, missing plugin) is left out
   * with a warning; when none can, the old list stays and this throws. Returns what changed.
   */
  replace(servers: readonly UpstreamServer[]): { added: number; removed: number; kept: number } {
    const current = new Map(this.#entries.map((entry) => [entry.identity, entry]));
    const next: Upstream[] = [];
    const fresh: Array<{ server: UpstreamServer; keys: ClientKeys }> = [];
    for (const server of servers) {
      const old = current.get(identityOf(server));
      if (old !== undefined) {
        if (!next.includes(old)) next.push(old);
        continue;
      }
      try {
        fresh.push({ server, keys: this.#check(server) });
      } catch (error) {
        this.#options.logger.warn(`server ${nameOf(server)} left out: ${errorMessage(error)}`);
      }
    }
    if (next.length === 0 && fresh.length === 0) {
      throw new Error("none of the servers can be used; keeping the current list");
    }
    const added = fresh.map(({ server, keys }) => this.#start(server, keys));
    // Keep the new list's order: the order is the operator's preference among equal servers.
    const byIdentity = new Map([...next, ...added].map((entry) => [entry.identity, entry]));
    const ordered = [...new Set(servers.map(identityOf))].flatMap((identity) => {
      const entry = byIdentity.get(identity);
      return entry ? [entry] : [];
    });
    const removed = this.#entries.filter((entry) => !ordered.includes(entry));
    this.#entries = ordered;
    this.balancer.replace(ordered.map((entry) => entry.outbound));
    for (const entry of removed) entry.plugin?.close();
    return { added: added.length, removed: removed.length, kept: next.length };
  }

  start(): void {
    this.balancer.start();
  }

  async close(): Promise<void> {
    await this.balancer.close();
    await Promise.all(this.#entries.map((entry) => entry.plugin?.close()));
  }

  /** UDP does not go through a SIP003 plugin, so a UDP-only role runs none. */
  #pluginOf(server: UpstreamServer) {
    return this.#options.mode === "udp_only" ? undefined : server.plugin;
  }

  #check(server: UpstreamServer): ClientKeys {
    const plugin = this.#pluginOf(server);
    if (plugin && findPlugin(plugin.name) === undefined) {
      // A missing plugin is a failure, not a silent plain connection the server will not accept.
      throw new Error(
        `Plugin "${plugin.name}" not found on PATH: install it or give its path`,
      );
    }
    return clientKeys({ ...server, mode: this.#options.mode });
  }

  #start(server: UpstreamServer, keys: ClientKeys): Upstream {
    // With a SIP003 plugin, TCP goes to the plugin's loopback port, which carries it on.
    const plugin = this.#pluginOf(server);
    const started = plugin
      ? startClientPlugin(
        plugin,
        { host: server.server, port: server.serverPort },
        this.#options.logger,
      )
      : undefined;
    const outbound = new ShadowsocksOutbound(
      {
        host: started?.host ?? server.server,
        port: started?.port ?? server.serverPort,
        framings: keys.framings,
        noDelay: this.#options.noDelay,
      },
      this.#options.onServerSkew,
      nameOf(server),
    );
    return { server, keys, outbound, plugin: started?.plugin, identity: identityOf(server) };
  }
}

/** `host:port`, as logs show a server (the remarks in parentheses when there are some). */
export function nameOf(server: UpstreamServer): string {
  const where = formatAddress(addressFromHost(server.server, server.serverPort));
  return server.remarks ? `${where} (${server.remarks})` : where;
}

function identityOf(server: UpstreamServer): string {
  const { server: host, serverPort, method, password, plugin, prefix, udpPrefix } = server;
  const bytes = (b: Uint8Array | undefined) => b && Array.from(b);
  return JSON.stringify([
    host,
    serverPort,
    method,
    password,
    plugin ?? null,
    bytes(prefix) ?? null,
    bytes(udpPrefix) ?? null,
  ]);
}
