/**
 * Typed, validated configuration handed to the services. Everything here is already checked:
 * ports are in range, the method exists, the password is present. Loading and validating lives
 * in `load.ts`; the services never see raw JSON.
 * @module
 */
import type { AclFile } from "../protocol/acl.ts";

/** Which transports a service runs. */
export type Mode = "tcp_only" | "tcp_and_udp" | "udp_only";

/** Settings shared by both roles. */
export interface CommonConfig {
  /** Cipher method name, one of `METHOD_NAMES`. */
  method: string;
  /** Password (AEAD: any UTF-8 string; 2022: base64 PSK). Never logged. */
  password: string;
  /** Idle timeout of a relayed TCP session, in seconds. Default 300. */
  timeout: number;
  /** Deadline for a session's handshake, in seconds. Default 10. */
  handshakeTimeout: number;
  mode: Mode;
  /** Set TCP_NODELAY on relayed sockets. Default true. */
  noDelay: boolean;
  /** UDP association idle timeout, in seconds. Default 300. */
  udpTimeout: number;
  /** Maximum UDP associations kept at once (LRU eviction beyond). Default 2048. */
  udpMaxAssociations: number;
  /** Seconds live sessions get to finish after SIGTERM/SIGINT before they are cut. Default 30. */
  gracePeriod?: number;
  /** A SIP003 plugin that carries the TCP traffic (`plugin`, `plugin_opts`, `plugin_args`). */
  plugin?: PluginConfig;
  /** SO_REUSEPORT on the listening sockets (`reuse_port`). */
  reusePort?: boolean;
}

/** A SIP003 plugin: its name (or path), its options and extra arguments. */
export interface PluginConfig {
  name: string;
  options?: string;
  args?: string[];
  /** `plugin_mode` (SIP003u, rust's key): `tcp_and_udp` sends UDP through the plugin too. */
  mode?: "tcp_only" | "tcp_and_udp";
}

/** One server listener: `ssdeno server`. */
export interface ServerConfig extends CommonConfig {
  /** Address to listen on, e.g. `0.0.0.0` or `::`. */
  address: string;
  port: number;
  /** Allow targets on loopback/private/link-local/unspecified addresses. Default false. */
  allowPrivateTargets: boolean;
  /** Try IPv6 addresses of a resolved target before IPv4 ones. Default false. */
  ipv6First: boolean;
  /**
   * Multi-user on one port (SIP023, `2022-blake3-aes-*-gcm` only): then `password` is the
   * server's identity PSK (iPSK) and each user's client password is `iPSK:uPSK`. Absent: one
   * user, whose key is `password`.
   */
  users?: ServerUser[];
  /** The ACL: `[outbound_block_list]` targets and `[black_list]`/`[white_list]` clients. */
  acl?: AclFile;
  /** Close a user's live sessions when they cross their data limit (else: only new ones fail). */
  dataLimitCutsLive?: boolean;
}

/** One user of a multi-user server (`users` in the JSON config, as ss-rust reads it). */
export interface ServerUser {
  /** Shown in logs and in per-user stats. */
  name: string;
  /** The user's PSK (uPSK): base64 of exactly the method's key size. Never logged. */
  password: string;
  /** Bytes (both directions, TCP and UDP) after which the user is refused; absent: no limit. */
  dataLimit?: number;
  /** When the user stops being accepted (ms since the epoch, config `expires`); absent: never. */
  expiresAt?: number;
  /**
   * Client IP addresses the user may connect from within `client_ip_window` (config
   * `max_client_ips`; service/client_ips.ts); absent: any number.
   */
  maxClientIps?: number;
  /**
   * Set at run time, never read from a file: why new sessions of this user are refused now
   * (fleet mode: over the data limit across the fleet; service/fleet_node.ts).
   */
  refused?: string;
}

/** One Shadowsocks server a local or tunnel can go through. */
export interface UpstreamServer {
  server: string;
  serverPort: number;
  method: string;
  /** The server's password (2022: its PSK, or `iPSK:uPSK` for one user of a multi-user one). */
  password: string;
  /** Its SIP003 plugin, when it has one. */
  plugin?: PluginConfig;
  /** A display name (`remarks` / `name`), shown in logs. */
  remarks?: string;
  /** Fixed first bytes of each TCP salt (Outline's connection `prefix`). */
  prefix?: Uint8Array;
  /** Fixed first bytes of each UDP packet's salt (`udp_prefix`, AEAD-2017 only). */
  udpPrefix?: Uint8Array;
}

/** One user of the local's own proxy port (SOCKS5 username/password, HTTP Basic). */
export interface LocalUser {
  name: string;
  password: string;
}

/** `ssdeno local`: a SOCKS5/SOCKS4/HTTP listener that forwards through one or more servers. */
export interface LocalConfig extends CommonConfig {
  /** Shadowsocks server host (name or IP literal). */
  server: string;
  serverPort: number;
  localAddress: string;
  localPort: number;
  /**
   * Every server to balance over, the first being `server`/`serverPort`/`method`/`password`.
   * Absent or one entry: that one server.
   */
  servers?: UpstreamServer[];
  /** Which protocols the port speaks: `mixed` (default: SOCKS5, SOCKS4 and HTTP), `socks`, `http`. */
  protocol?: "mixed" | "socks" | "http";
  /** Users of the port; when set, SOCKS5 and HTTP clients must authenticate and SOCKS4 is refused. */
  users?: LocalUser[];
  /** The ACL (libev/rust format): bypass, proxy and block decisions per target. */
  acl?: AclFile;
  /** Health checks of several servers. */
  balancer?: { checkIntervalS: number; checkTarget?: string };
  /** SIP008 online config: the servers come from this URL, refreshed every `updateIntervalS`. */
  onlineConfig?: { url: string; updateIntervalS: number; allowInsecure?: boolean };
}

/** `ssdeno tunnel`: like `ss-tunnel`, a local port forwarded to one fixed target via the server. */
export interface TunnelConfig extends LocalConfig {
  /** The fixed target (`tunnel_address`, `-L host:port`): a name or IP literal, no brackets. */
  tunnelHost: string;
  tunnelPort: number;
}
