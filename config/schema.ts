/**
 * The one table of settings: each config-file key with its command-line flag, how the flag's
 * text is read, which commands use it, its default and one line of help. The parseArgs options,
 * the flag part of `--help`, the list of accepted config keys and the README's key table all
 * come from here, so a new setting is one row.
 * @module
 */

/** The commands that run a service and read settings. */
export type Role = "server" | "local" | "tunnel";

/** How a flag's text becomes a config value. */
export type FlagValue =
  | "string"
  | "strings"
  | "port"
  | "seconds"
  | "true"
  | "uri-text"
  | "integer";

export interface Setting {
  /** The config-file key (shadowsocks-libev / -rust spelling). */
  readonly key: string;
  /** The long flag without dashes, when there is one. */
  readonly flag?: string;
  readonly short?: string;
  /** How the flag's text is read; "true" is a switch. */
  readonly value?: FlagValue;
  /** Placeholder for the value in `--help`. */
  readonly placeholder?: string;
  readonly roles: readonly Role[];
  /** The default, as `--help` shows it. */
  readonly default?: string;
  readonly help: string;
}

const ALL: readonly Role[] = ["server", "local", "tunnel"];
const CLIENTS: readonly Role[] = ["local", "tunnel"];

export const SETTINGS: readonly Setting[] = [
  {
    key: "server",
    flag: "server",
    short: "s",
    value: "strings",
    placeholder: "HOST",
    roles: ALL,
    help: "Server address (server: address to listen on); repeatable",
  },
  {
    key: "server_port",
    flag: "server-port",
    short: "p",
    value: "port",
    placeholder: "PORT",
    roles: ALL,
    default: "8388",
    help: "Server port (server: listen port, 0 for any free one)",
  },
  {
    key: "local_address",
    flag: "local-address",
    short: "b",
    value: "string",
    placeholder: "ADDR",
    roles: CLIENTS,
    default: "127.0.0.1",
    help: "Local proxy (or tunnel) listen address",
  },
  {
    key: "local_port",
    flag: "local-port",
    short: "l",
    value: "port",
    placeholder: "PORT",
    roles: CLIENTS,
    default: "1080",
    help: "Local proxy (or tunnel) listen port",
  },
  {
    key: "password",
    flag: "password",
    short: "k",
    value: "string",
    placeholder: "PASS",
    roles: ALL,
    help: "Password (2022: base64 key, or iPSK:uPSK for one user)",
  },
  {
    key: "method",
    flag: "method",
    short: "m",
    value: "string",
    placeholder: "METHOD",
    roles: ALL,
    default: "chacha20-ietf-poly1305",
    help: "Cipher method",
  },
  {
    key: "timeout",
    flag: "timeout",
    short: "t",
    value: "seconds",
    placeholder: "SECONDS",
    roles: ALL,
    default: "300",
    help: "Idle timeout of a TCP session",
  },
  {
    key: "handshake_timeout",
    flag: "handshake-timeout",
    value: "seconds",
    placeholder: "S",
    roles: ALL,
    default: "10",
    help: "Deadline for a session's handshake",
  },
  {
    key: "tunnel_address",
    flag: "tunnel-address",
    short: "L",
    value: "string",
    placeholder: "H:P",
    roles: ["tunnel"],
    help: "Target of the tunnel command, e.g. 1.1.1.1:53",
  },
  {
    key: "protocol",
    flag: "protocol",
    value: "string",
    placeholder: "P",
    roles: ["local"],
    default: "mixed",
    help: "Local port speaks mixed (SOCKS5/4, HTTP), socks or http",
  },
  {
    key: "acl",
    flag: "acl",
    value: "string",
    placeholder: "FILE",
    roles: ["server", "local"],
    help: "ACL file (libev/rust format): bypass, proxy, block",
  },
  {
    key: "metrics",
    flag: "metrics",
    value: "string",
    placeholder: "H:P",
    roles: ["server"],
    help: "Serve Prometheus metrics at http://H:P/metrics (a bare port: 127.0.0.1)",
  },
  {
    key: "manager_address",
    flag: "manager-address",
    value: "string",
    placeholder: "H:P",
    roles: ["server"],
    help: "ss-manager UDP API (add, remove, ping, list) on H:P",
  },
  {
    key: "api",
    flag: "api",
    value: "string",
    placeholder: "H:P",
    roles: ["server"],
    help: "Server Management API (SSM v1, users and stats) over HTTP on H:P",
  },
  {
    key: "api_token",
    roles: ["server"],
    help: "Bearer token the API requires (needed off loopback, or api_secret_path)",
  },
  {
    key: "api_secret_path",
    roles: ["server"],
    help: "A secret path prefix for the API, e.g. /Qx8…",
  },
  {
    key: "status",
    flag: "status",
    value: "string",
    placeholder: "H:P",
    roles: ALL,
    help: "Live status page on H:P (also metrics and api given the same H:P)",
  },
  {
    key: "status_token",
    roles: ALL,
    help: "Bearer token (or ?token= once) the status page requires off loopback",
  },
  {
    key: "status_secret_path",
    roles: ALL,
    help: "A secret path prefix for the status page, e.g. /Qx8…",
  },
  {
    key: "data_limit_cuts_live",
    roles: ["server"],
    default: "false",
    help: "A user crossing users[].data_limit loses live sessions too, not just new ones",
  },
  {
    key: "state_file",
    roles: ["server"],
    help: "Per-user counters kept across restarts in this JSON file (written atomically)",
  },
  {
    key: "public_host",
    flag: "public-host",
    value: "string",
    placeholder: "HOST",
    roles: ["server"],
    help: "Host clients dial, for printed ss:// URIs (default: detected)",
  },
  {
    key: "show_url",
    flag: "show-url",
    value: "true",
    roles: ["server"],
    help: "Print the ss:// URIs and QR codes at every start, not only the first",
  },
  {
    key: "grace_period",
    flag: "grace-period",
    value: "seconds",
    placeholder: "S",
    roles: ALL,
    default: "30",
    help: "On SIGTERM/SIGINT: how long live sessions may finish",
  },
  {
    key: "plugin",
    flag: "plugin",
    value: "string",
    placeholder: "NAME",
    roles: ALL,
    help: "SIP003 plugin carrying the TCP traffic (obfs-server, v2ray-plugin, …)",
  },
  {
    key: "plugin_opts",
    flag: "plugin-opts",
    value: "string",
    placeholder: "OPTS",
    roles: ALL,
    help: "The plugin's options (SS_PLUGIN_OPTIONS)",
  },
  {
    key: "allow_private_targets",
    flag: "allow-private-targets",
    value: "true",
    roles: ["server"],
    help: "Let clients reach loopback and private addresses",
  },
  {
    key: "no_delay",
    flag: "no-delay",
    value: "true",
    roles: ALL,
    default: "on",
    help: "Set TCP_NODELAY",
  },
  {
    key: "ipv6_first",
    flag: "ipv6-first",
    short: "6",
    value: "true",
    roles: ["server"],
    help: "Prefer IPv6 addresses of targets",
  },
  {
    key: "server_url",
    flag: "server-url",
    value: "string",
    placeholder: "URL",
    roles: CLIENTS,
    help: "SIP008 online config: the servers come from this https:// URL",
  },
  {
    key: "prefix",
    flag: "prefix",
    value: "uri-text",
    placeholder: "TEXT",
    roles: CLIENTS,
    help: "Outline's connection prefix, URI-encoded (POST%20)",
  },
  {
    key: "allow_insecure_ciphers",
    flag: "allow-insecure-ciphers",
    value: "true",
    roles: ALL,
    help: "Allow the insecure legacy stream ciphers (rc4-md5, aes-*-cfb, …)",
  },
  {
    key: "key",
    flag: "key",
    value: "string",
    placeholder: "BASE64",
    roles: ALL,
    help: "The key itself, base64, instead of a password (libev)",
  },
  {
    key: "nameserver",
    flag: "nameserver",
    short: "d",
    value: "strings",
    placeholder: "ADDR",
    roles: ALL,
    help: "DNS servers to resolve targets with (comma-separated; repeatable)",
  },
  {
    key: "user",
    flag: "user",
    short: "a",
    value: "string",
    placeholder: "USER",
    roles: ALL,
    help: "Run as this user once the ports are bound (needs root to start)",
  },
  {
    key: "pid_file",
    flag: "pid-file",
    short: "f",
    value: "string",
    placeholder: "FILE",
    roles: ALL,
    help: "Write the process ID there once started; removed at exit",
  },
  {
    key: "nofile",
    flag: "nofile",
    short: "n",
    value: "integer",
    placeholder: "N",
    roles: ALL,
    default: "the hard limit",
    help: "Soft limit of open files to set at start",
  },
  {
    key: "forbidden_ip",
    flag: "forbidden-ip",
    value: "strings",
    placeholder: "CIDR",
    roles: ["server"],
    help: "Also refuse these target IPs/CIDRs (comma-separated; repeatable)",
  },
  {
    key: "reuse_port",
    flag: "reuse-port",
    value: "true",
    roles: ALL,
    help: "SO_REUSEPORT on listening sockets (several processes on one port)",
  },
  {
    key: "client_ip_window",
    value: "integer",
    placeholder: "S",
    roles: ["server"],
    default: "300",
    help: "Seconds a client IP counts towards a user's max_client_ips after their last session",
  },
  {
    key: "workers",
    flag: "workers",
    value: "integer",
    placeholder: "N",
    roles: ["server"],
    default: "1, more under load",
    help: "Isolates accepting on each TCP port",
  },
  {
    key: "fast_open",
    flag: "fast-open",
    value: "true",
    roles: ALL,
    help: "TCP Fast Open (not available in Deno: a warning)",
  },
  {
    key: "mtu",
    flag: "mtu",
    value: "integer",
    placeholder: "BYTES",
    roles: ALL,
    help: "libev's UDP buffer hint; accepted, with no effect here (a warning)",
  },
  // Keys with no flag: lists and objects belong in a file.
  { key: "plugin_args", roles: ALL, help: "Extra command-line arguments of the plugin" },
  {
    key: "plugin_mode",
    roles: ALL,
    default: "tcp_only",
    help: "tcp_and_udp: UDP goes through the plugin too (SIP003u)",
  },
  {
    key: "mode",
    roles: ALL,
    default: "tcp_only",
    help: "tcp_only, tcp_and_udp or udp_only (-u, -U)",
  },
  {
    key: "servers",
    roles: ALL,
    help: "Several servers (rust's list form): listeners, or upstreams",
  },
  {
    key: "port_password",
    roles: ["server"],
    help: "One listener per port, each with its password",
  },
  {
    key: "users",
    roles: ["server"],
    help: "SIP023 multi-user: [{name, password (uPSK), data_limit, expires, max_client_ips}]",
  },
  {
    key: "local_users",
    roles: ["local"],
    help: "Users of the local port: [{name, password}] (SOCKS5 and HTTP auth)",
  },
  {
    key: "locals",
    roles: ["local"],
    help: "rust's list of local listeners: the first one's local_address, local_port, protocol",
  },
  {
    key: "fleet",
    roles: ["server"],
    help:
      "Several servers, one Redis: {redis_url, cluster, tls_ca, prefix, node, strict}: shared replay protection, users, byte counts and data limits",
  },
  {
    key: "balancer",
    roles: ["local"],
    help: "Health checks of several servers: {check_interval (s), check_target (host:port)}",
  },
  {
    key: "online_config",
    roles: CLIENTS,
    help: "rust's SIP008 online config: {config_url, update_interval (s, default 3600)}",
  },
  {
    key: "udp_prefix",
    roles: CLIENTS,
    help: "Outline's prefix for UDP packets' salts (AEAD-2017), one character per byte",
  },
  { key: "dns_server", roles: ALL, help: "The Python original's name for nameserver: a list" },
  { key: "prefer_ipv6", roles: ALL, help: "The Python original's name for ipv6_first" },
  { key: "udp_timeout", roles: ALL, default: "300", help: "Idle timeout of a UDP association" },
  {
    key: "udp_max_associations",
    roles: ALL,
    default: "2048",
    help: "UDP associations kept at once (least recently used evicted)",
  },
];

/** Every key a config file may hold, in either role (a file is often shared by both). */
export const ACCEPTED_KEYS: ReadonlySet<string> = new Set(SETTINGS.map((setting) => setting.key));

/** The flag lines of `--help`, aligned. */
export function flagHelp(): string[] {
  return SETTINGS.filter((setting) => setting.flag !== undefined).map((setting) => {
    const short = setting.short ? `-${setting.short}, ` : "    ";
    const value = setting.placeholder ? ` ${setting.placeholder}` : "";
    const left = `  ${short}--${setting.flag}${value}`;
    const note = setting.default === undefined ? "" : ` (default ${setting.default})`;
    return `${left.padEnd(29)}${left.length >= 29 ? " " : ""}${setting.help}${note}`;
  });
}
