/**
 * From a shadowsocks-libev/-rust style JSON config (plus command-line overrides) to validated
 * `ServerConfig[]` or `LocalConfig`. Everything but `readConfigFile` is pure, so every bad input
 * is unit-testable; warnings are returned, never printed, and every mistake is a `ConfigError`
 * that names the key and what it accepts.
 * @module
 */

import { findMethod, METHOD_NAMES, type MethodInfo } from "../crypto/methods.ts";
import { methodUnavailableReason } from "../crypto/method_support.ts";
import { passwordForKey } from "../crypto/kdf.ts";
import { ConfigError } from "./errors.ts";
import { jsonErrorOffset, lineAndColumn } from "./_json_error_offset.ts";
import { blankJsonComments } from "./_json_comments.ts";
import { parseHostPort } from "../protocol/host_port.ts";
import { addressFromHost } from "../protocol/address.ts";
import { AclError, type AclFile, parseAcl } from "../protocol/acl.ts";
import { MAX_AEAD_USERS } from "../protocol/session_framings.ts";
import { ACCEPTED_KEYS } from "./schema.ts";
import { checkPrefix, prefixFromCodePoints } from "../protocol/outline_prefix.ts";
import { InvalidPskError } from "../crypto/kdf2022.ts";
import { clientKeys2022, serverKeys2022 } from "../protocol/aead2022_identity.ts";
import type {
  CommonConfig,
  LocalConfig,
  LocalUser,
  Mode,
  PluginConfig,
  ServerConfig,
  ServerUser,
  TunnelConfig,
  UpstreamServer,
} from "./types.ts";

/** A parsed but unchecked JSON config object, keyed as in the file (`server_port`, ...). */
export type RawConfig = Record<string, unknown>;

/** Validated listeners for `ssdeno server`, plus warnings for the caller to log. */
export interface ServerConfigs {
  configs: ServerConfig[];
  warnings: string[];
  /** Where to serve Prometheus metrics (`metrics`, `--metrics`), when asked. */
  metrics?: { host: string; port: number };
  /** Where the ss-manager API listens (`manager_address`), when asked. */
  manager?: { host: string; port: number };
  /** The HTTP management API (`api`), when asked. */
  api?: { host: string; port: number; token?: string; secretPath?: string };
  /** Where per-user counters persist (`state_file`), when asked. */
  stateFile?: string;
  /** The host clients dial (`public_host`), for printed URIs. */
  publicHost?: string;
  /** Print the URIs at every start (`show_url`, `--show-url`). */
  showUrl?: boolean;
  /** Fleet mode (`fleet`): replay protection shared with other servers through Redis. */
  fleet?: FleetSettings;
  process: ProcessSettings;
}

/** The `fleet` key: which Redis, under which key prefix, as which node. */
export interface FleetSettings {
  /**
   * `redis://` or `rediss://` URL, or a Redis Cluster's seed nodes (one URL each); may hold a
   * password: never shown in messages.
   */
  url: string | string[];
  /** The URLs are a Redis Cluster's seed nodes (`cluster`). */
  cluster: boolean;
  /** A PEM file of the CA that signed a `rediss://` server's certificate (`tls_ca`). */
  tlsCaFile?: string;
  /** Key prefix shared by the fleet. Default "ssdeno". */
  prefix: string;
  /**
   * This server's name in the fleet, when the config gives one (main.ts defaults to the host
   * name: a name that stays the same across restarts keeps one usage field per node in Redis).
   */
  node?: string;
  /** Refuse sessions while Redis is unreachable (default false: serve on local replay memory). */
  strict: boolean;
}

/** What a fleet node's name may be. */
export const FLEET_NODE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Key prefix of a fleet that names none. */
export const DEFAULT_FLEET_PREFIX = "ssdeno";
const FLEET_KEYS = ["redis_url", "cluster", "tls_ca", "prefix", "node", "strict"];

/** The validated `ssdeno local` config, plus warnings for the caller to log. */
export interface LocalConfigResult {
  config: LocalConfig;
  warnings: string[];
  process: ProcessSettings;
}

/** Method used when neither the file nor the flags name one (shadowsocks-libev's default). */
export const DEFAULT_METHOD = "chacha20-ietf-poly1305";
/** Port used when neither the file nor the flags give one (the SIP002 default). */
export const DEFAULT_SERVER_PORT = 8388;
/** Seconds live sessions get after SIGTERM/SIGINT (long enough for most downloads to end). */
export const DEFAULT_GRACE_PERIOD = 30;

const MODES: readonly Mode[] = ["tcp_only", "tcp_and_udp", "udp_only"];
/** setTimeout overflows past 2^31-1 ms, so longer timeouts would fire at once. */
const MAX_SECONDS = 2_147_483;

/** Keys read here, in either role (a file is often shared by ss-server and ss-local). */
const USED_KEYS = ACCEPTED_KEYS;

/** Keys accepted for compatibility but not acted on; each gets a warning when it has effect. */
const IGNORED_KEYS: Record<string, (value: unknown, name: string) => string | undefined> = {
  "log-file": (value, name) => {
    asString(value, name);
    return `Ignoring ${name}: ssdeno logs to stderr (systemd's journal keeps it)`;
  },
  "pid-file": (value, name) => {
    asString(value, name);
    return undefined; // the Python original's spelling of pid_file, read there
  },
  one_time_auth: (value, name) => {
    if (asBoolean(value, name)) {
      throw new ConfigError(
        `Invalid ${name}: one-time auth (OTA) was withdrawn from Shadowsocks in 2017 and is not ` +
          "supported; use an AEAD method, which authenticates every chunk",
      );
    }
    return undefined;
  },
  fast_open: (value, name) =>
    booleanNotice(value, name, "Deno's sockets have no TCP Fast Open; connections open without it"),
  mtu: (value, name) => {
    asInteger(value, name, 68, 65535, "an MTU from 68 to 65535");
    return `Ignoring ${name}: UDP buffers hold 64 KiB datagrams and the kernel fragments`;
  },
  verbose: (value, name) => {
    if (typeof value !== "boolean" && typeof value !== "number") {
      throw invalid(name, value, "true, false or a number");
    }
    return `Ignoring ${name}: use -v on the command line instead`;
  },
};

/** Most isolates `workers` may ask for: each holds its own heap and JIT code (tens of MiB). */
const MAX_WORKERS = 256;

/** Process-wide settings shared by every role (libev's -a, -f, -n, --reuse-port). */
export interface ProcessSettings {
  /** Switch to this user after binding (`user`, `-a`). */
  user?: string;
  /** Where to write our PID (`pid_file`, `-f`). */
  pidFile?: string;
  /** The soft file limit to set (`nofile`, `-n`); absent: raise it to the hard limit. */
  nofile?: number;
  /** SO_REUSEPORT on listeners (`reuse_port`, `--reuse-port`). */
  reusePort?: boolean;
  /** DNS servers for target names (`nameserver`, `-d`, the Python original's `dns_server`). */
  nameservers?: { host: string; port: number }[];
  /** The live status page (`status`, `status_token`, `status_secret_path`). */
  status?: { host: string; port: number; token?: string; secretPath?: string };
  /**
   * Isolates accepting on each TCP listener (`workers`, `--workers`); absent: the server starts
   * with one and adds more, up to one per core, as load asks (service/workers.ts). The local and
   * tunnel run in one.
   */
  workers?: number;
  /** How long a client IP counts for a user with `max_client_ips` (`client_ip_window`, s → ms). */
  clientIpWindowMs?: number;
}

/**
 * `nameserver` (libev: `"8.8.8.8,1.1.1.1"`), `dns_server` (the Python original: a list): IP
 * addresses, each with an optional port (`1.1.1.1:53`, `[2606:4700::1111]:53`).
 */
function asNameServers(value: unknown, name: string): { host: string; port: number }[] {
  const entries = asStringList(value, name).flatMap((item) => item.split(","))
    .map((item) => item.trim()).filter((item) => item !== "");
  if (entries.length === 0) throw invalid(name, value, "DNS server addresses");
  return entries.map((entry) => {
    const bare = entry.includes(":") && !entry.startsWith("[") && isIpLiteral(entry);
    const { host, port } = bare ? { host: entry, port: undefined } : splitHostPort(entry, name);
    if (!isIpLiteral(host)) {
      throw invalid(name, entry, "IP addresses of DNS servers (names would need a resolver)");
    }
    return { host, port: port ?? 53 };
  });
}

function isIpLiteral(text: string): boolean {
  return addressFromHost(text, 0).type !== "domain";
}

/** Reads the process settings of `raw` (file overlaid with flags). */
function processSettings(raw: RawConfig): ProcessSettings {
  const user = optional(raw, "user", asString);
  const pidFile = optional(raw, "pid_file", asString) ?? optional(raw, "pid-file", asString);
  const nofile = optional(
    raw,
    "nofile",
    (v, n) => asInteger(v, n, 64, 1 << 30, "a number of files from 64"),
  );
  const reusePort = optional(raw, "reuse_port", asBoolean);
  const nameservers = optional(raw, "nameserver", asNameServers) ??
    optional(raw, "dns_server", asNameServers);
  const status = apiSettings(raw, "status");
  const workers = optional(
    raw,
    "workers",
    (v, n) => asInteger(v, n, 1, MAX_WORKERS, `an integer from 1 to ${MAX_WORKERS}`),
  );
  const clientIpWindow = optional(
    raw,
    "client_ip_window",
    (v, n) => asInteger(v, n, 1, 30 * 86_400, "seconds from 1 to 30 days"),
  );
  return {
    ...(clientIpWindow !== undefined ? { clientIpWindowMs: clientIpWindow * 1000 } : {}),
    ...(workers !== undefined ? { workers } : {}),
    ...(status ? { status } : {}),
    ...(nameservers ? { nameservers } : {}),
    ...(user ? { user } : {}),
    ...(pidFile ? { pidFile } : {}),
    ...(nofile !== undefined ? { nofile } : {}),
    ...(reusePort ? { reusePort } : {}),
  };
}

/** Keys of one `servers[]` item (shadowsocks-rust's list form). */
const ITEM_KEYS = new Set([
  "server",
  "address",
  "server_port",
  "port",
  "password",
  "method",
  "mode",
  "timeout",
  "disabled",
  "remarks",
  "name",
  "plugin",
  "plugin_opts",
  "plugin_args",
  "users",
  "id",
  "prefix",
  "udp_prefix",
  "plugin_mode",
]);

/**
 * Top-level keys of a SIP008 document, so that one can be a local's `-c` file: `version` is
 * checked, the data usage is shown at start.
 */
const SIP008_KEYS = new Set(["version", "bytes_used", "bytes_remaining"]);

/** How often an online config is fetched again when `update_interval` is not set (rust's). */
export const DEFAULT_ONLINE_UPDATE_INTERVAL_S = 3600;

/** Keys that, given as flags, describe one endpoint and so replace the file's lists. */
const ENDPOINT_KEYS = ["server_port", "password"] as const;

/** Parses config file text; a syntax error says the file name, line and column. */
export function parseConfigText(text: string, fileName: string): RawConfig {
  const source = blankJsonComments(text.startsWith("\uFEFF") ? text.slice(1) : text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const offset = jsonErrorOffset(source) ?? v8Offset(error.message) ?? source.length;
    const { line, column } = lineAndColumn(source, offset);
    throw new ConfigError(
      `Invalid JSON in config file "${fileName}" at line ${line}, column ${column}: ${
        jsonReason(error.message)
      }`,
      { cause: error },
    );
  }
  if (!isObject(parsed)) {
    throw new ConfigError(
      `Invalid config file "${fileName}": expected a JSON object at the top level, got ${
        kind(parsed)
      }`,
    );
  }
  return parsed;
}

/** Reads and parses a config file; a read failure names the path and the OS reason. */
export async function readConfigFile(path: string): Promise<RawConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // Deno appends ": readfile '<path>'", which repeats what the message already says.
    throw new ConfigError(
      `Cannot read config file "${path}": ${reason.replace(/: \w+ '.*'$/, "")}`,
      { cause: error },
    );
  }
  return parseConfigText(text, path);
}

/**
 * Validates `file` overlaid with `flags` (same keys; flags win) into one `ServerConfig` per
 * listener: every `server` address times either `server_port` or each `port_password` entry,
 * plus each enabled `servers[]` item.
 */
export function buildServerConfigs(file: RawConfig, flags: RawConfig = {}): ServerConfigs {
  const warnings: string[] = [];
  if (flags["local_address"] !== undefined) {
    // ss-server -b binds outgoing connections; a libev command line keeps working, said once.
    warnings.push(
      "Ignoring -b/--local-address on the server: outgoing connections cannot be bound to an " +
        "address in Deno, so the system's routes choose it",
    );
  }
  const raw = overlay(file, flags, warnings);
  const manager = optional(raw, "manager_address", asMetricsAddress);
  if (
    manager !== undefined && raw["password"] === undefined && raw["servers"] === undefined &&
    raw["port_password"] === undefined
  ) {
    // ss-manager style: no listener of its own until the API adds some.
    commonSettings(raw);
    return { configs: [], warnings, manager, process: processSettings(raw) };
  }
  const base = commonSettings(raw);
  const server = {
    allowPrivateTargets: optional(raw, "allow_private_targets", asBoolean) ?? false,
    ipv6First: optional(raw, "ipv6_first", asBoolean) ?? optional(raw, "prefer_ipv6", asBoolean) ??
      false,
  };
  const items = optional(raw, "servers", asList) ?? [];
  const portPassword = optional(raw, "port_password", asObject);
  const addresses = (optional(raw, "server", asStringList) ?? ["0.0.0.0"]).map((item, i) =>
    splitHostPort(item, listName("server", raw["server"], i))
  );

  const password = optional(raw, "password", (v, n) => asString(v, n, true));
  const users = optional(raw, "users", asUsers);
  const listeners: ServerConfig[] = [];
  const listener = (fields: ListenerFields): ServerConfig => {
    const config: ServerConfig = {
      ...base,
      ...server,
      ...credentials(fields.method ?? base.method, fields.password ?? password, fields.where),
      address: fields.address,
      port: fields.port,
      mode: fields.mode ?? base.mode,
      timeout: fields.timeout ?? base.timeout,
    };
    const listenerUsers = fields.users ?? users;
    if (listenerUsers !== undefined) config.users = listenerUsers;
    if (fields.plugin !== undefined) config.plugin = fields.plugin;
    checkServerKeys(config, fields.where);
    return config;
  };

  if (portPassword !== undefined) {
    for (const key of ENDPOINT_KEYS) {
      if (raw[key] !== undefined) warnings.push(`Ignoring ${key}: port_password is set`);
    }
    for (const [portText, entryPassword] of Object.entries(portPassword)) {
      const name = `port_password["${portText}"]`;
      const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
      if (port < 1 || port > 65535) {
        throw invalid("port_password key", portText, "a port number from 1 to 65535");
      }
      const pass = asString(entryPassword, name, true);
      for (const { host } of addresses) {
        listeners.push(listener({ address: host, port, password: pass, where: name }));
      }
    }
  } else if (items.length === 0 || raw["server_port"] !== undefined) {
    const port = optional(raw, "server_port", (v, n) => asPort(v, n, 0));
    for (const { host, port: itemPort } of addresses) {
      listeners.push(listener({
        address: host,
        port: itemPort ?? port ?? DEFAULT_SERVER_PORT,
        password,
        where: "",
      }));
    }
  }
  items.forEach((item, i) => {
    const fields = serverItem(item, `servers[${i}]`, 0, warnings);
    if (fields !== undefined) listeners.push(listener(fields));
  });

  if (listeners.length === 0) {
    throw new ConfigError(`Invalid servers: every entry is disabled, so there is nothing to run`);
  }
  checkDuplicates(listeners);
  checkMethods(
    listeners.map((config) => ({ method: config.method, where: "" })),
    optional(raw, "allow_insecure_ciphers", asBoolean) ?? false,
    warnings,
  );
  const forbidden = optional(raw, "forbidden_ip", asCidrList);
  const acl = optional(raw, "acl", (v, n) => readAcl(asString(v, n), warnings, forbidden)) ??
    (forbidden?.length ? parseAcl(blockSection(forbidden)) : undefined);
  if (acl !== undefined) listeners.forEach((config) => config.acl = acl);
  if (optional(raw, "data_limit_cuts_live", asBoolean)) {
    listeners.forEach((config) => config.dataLimitCutsLive = true);
  }
  const metrics = optional(raw, "metrics", asMetricsAddress);
  const api = apiSettings(raw);
  const stateFile = optional(raw, "state_file", asString);
  const publicHost = optional(raw, "public_host", asString);
  const showUrl = optional(raw, "show_url", asBoolean);
  const fleet = optional(raw, "fleet", asFleet);
  const process = processSettings(raw);
  if (process.reusePort) listeners.forEach((config) => config.reusePort = true);
  return {
    configs: listeners,
    warnings,
    process,
    ...(publicHost ? { publicHost: unbracket(publicHost) } : {}),
    ...(showUrl ? { showUrl } : {}),
    ...(stateFile ? { stateFile } : {}),
    ...(metrics ? { metrics } : {}),
    ...(manager ? { manager } : {}),
    ...(api ? { api } : {}),
    ...(fleet ? { fleet } : {}),
  };
}

/** The `fleet` object; its `redis_url` may carry a password, so it is never echoed. */
function asFleet(value: unknown, name: string): FleetSettings {
  const raw = asObject(value, name);
  const unknown = Object.keys(raw).filter((key) => !FLEET_KEYS.includes(key));
  if (unknown.length > 0) {
    throw new ConfigError(
      `Invalid ${name}: unknown key ${unknown.map((key) => JSON.stringify(key)).join(", ")} ` +
        `(known: ${FLEET_KEYS.join(", ")})`,
    );
  }
  const url = optional(raw, "redis_url", (v, n) => {
    const list = Array.isArray(v) ? v : [v];
    if (list.length === 0 || !list.every((item) => typeof item === "string")) {
      throw invalid(n, v, "a URL or a list of URLs", true);
    }
    return list as string[];
  }, `${name}.`);
  if (url === undefined) {
    throw new ConfigError(`Invalid ${name}: redis_url is required (redis://host:port)`);
  }
  if (!url.every((item) => /^rediss?:\/\/[^\s]+$/.test(item))) {
    throw new ConfigError(
      `Invalid ${name}.redis_url (hidden: it may hold a password): expected redis://… or rediss://…`,
    );
  }
  const cluster = optional(raw, "cluster", asBoolean, `${name}.`) ?? false;
  if (url.length > 1 && !cluster) {
    throw new ConfigError(
      `Invalid ${name}.redis_url: several URLs are a Redis Cluster's seed nodes: set cluster: true`,
    );
  }
  const tlsCaFile = optional(raw, "tls_ca", asString, `${name}.`);
  const prefix = optional(raw, "prefix", asString, `${name}.`) ?? DEFAULT_FLEET_PREFIX;
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) {
    throw invalid(`${name}.prefix`, prefix, "1 to 64 letters, digits or ._:-");
  }
  const node = optional(raw, "node", asString, `${name}.`);
  if (node !== undefined && !FLEET_NODE_NAME.test(node)) {
    throw invalid(`${name}.node`, node, "1 to 64 letters, digits or ._-");
  }
  const strict = optional(raw, "strict", asBoolean, `${name}.`) ?? false;
  return {
    url: url.length === 1 ? url[0]! : url,
    cluster,
    ...(tlsCaFile === undefined ? {} : { tlsCaFile }),
    prefix,
    ...(node === undefined ? {} : { node }),
    strict,
  };
}

/**
 * Validates `file` overlaid with `flags` into the `ssdeno local` config. The server comes from
 * the top-level `server` keys, or else from the first enabled `servers[]` item.
 */
export function buildLocalConfig(
  file: RawConfig,
  flags: RawConfig = {},
  online?: readonly UpstreamServer[],
): LocalConfigResult {
  const warnings: string[] = [];
  const raw = overlay(withFirstLocal(file, warnings), flags, warnings);
  if (online !== undefined) {
    // The fetched list replaces the file's servers (which stay a fallback only at start).
    for (const key of ["server", "server_port", "servers"]) delete raw[key];
    raw["servers"] = [];
  }
  const base = commonSettings(raw);
  const password = optional(raw, "password", (v, n) => asString(v, n, true));

  const all: ListenerFields[] = [];
  const hosts = optional(raw, "server", asStringList);
  if (hosts !== undefined) {
    const defaultPort = optional(raw, "server_port", (v, n) => asPort(v, n, 1)) ??
      DEFAULT_SERVER_PORT;
    hosts.forEach((text, i) => {
      const where = listName("server", raw["server"], i);
      const { host, port } = splitHostPort(text, where);
      all.push({ address: host, port: port ?? defaultPort, password, where: "" });
    });
  } else {
    const items = optional(raw, "servers", asList) ?? [];
    items.forEach((item, i) => {
      const parsed = serverItem(item, `servers[${i}]`, 1, warnings);
      if (parsed !== undefined) all.push(parsed);
    });
    for (const server of online ?? []) {
      all.push({
        address: server.server,
        port: server.serverPort,
        password: server.password,
        method: server.method,
        ...(server.plugin ? { plugin: server.plugin } : {}),
        ...(server.remarks ? { remarks: server.remarks } : {}),
        ...(server.prefix || server.udpPrefix ? { prefixes: textsOf(server) } : {}),
        where: "online config",
      });
    }
    if (all.length === 0) {
      throw new ConfigError(
        `Missing server: set "server" in the config file or pass -s/--server or --url`,
      );
    }
  }
  checkSip008Version(raw);
  const topPrefixes = prefixTexts(raw, "");
  const upstreams: UpstreamServer[] = all.map((fields) => {
    const upstream: UpstreamServer = {
      server: fields.address,
      serverPort: fields.port,
      ...credentials(fields.method ?? base.method, fields.password ?? password, fields.where),
    };
    const plugin = fields.plugin ?? base.plugin;
    if (plugin !== undefined) upstream.plugin = plugin;
    if (fields.remarks !== undefined) upstream.remarks = fields.remarks;
    const texts = fields.prefixes ?? topPrefixes;
    Object.assign(upstream, prefixes(texts, upstream.method, fields.where, warnings));
    checkClientKeys({ ...base, ...upstream }, fields.where);
    return upstream;
  });
  checkMethods(
    upstreams.map((upstream, i) => ({ method: upstream.method, where: all[i]!.where })),
    optional(raw, "allow_insecure_ciphers", asBoolean) ?? false,
    warnings,
  );
  const fields = all[0]!;
  const first = upstreams[0]!;

  const config: LocalConfig = {
    ...base,
    method: first.method,
    password: first.password,
    mode: fields.mode ?? base.mode,
    timeout: fields.timeout ?? base.timeout,
    server: first.server,
    serverPort: first.serverPort,
    localAddress: unbracket(optional(raw, "local_address", asString) ?? "127.0.0.1"),
    localPort: optional(raw, "local_port", (v, n) => asPort(v, n, 0)) ?? 1080,
  };
  config.servers = upstreams;
  const spec = onlineConfigSpec(raw);
  if (spec !== undefined) {
    config.onlineConfig = {
      url: spec.url,
      updateIntervalS: spec.updateIntervalS,
      ...(spec.allowInsecure ? { allowInsecure: true } : {}),
    };
    warnings.push(...spec.warnings);
  }
  const protocol = optional(raw, "protocol", asProtocol);
  if (protocol !== undefined) config.protocol = protocol;
  const users = optional(raw, "local_users", asLocalUsers);
  if (users !== undefined) config.users = users;
  const acl = optional(raw, "acl", (v, n) => readAcl(asString(v, n), warnings));
  if (acl !== undefined) config.acl = acl;
  const balancer = optional(raw, "balancer", asBalancer);
  if (balancer !== undefined) config.balancer = balancer;
  const process = processSettings(raw);
  if (process.reusePort) config.reusePort = true;
  return { config, warnings, process };
}

/** The salt prefixes as written: strings of U+0000..U+00FF, one character per byte. */
interface PrefixTexts {
  prefix?: string;
  udpPrefix?: string;
}

function textsOf(server: UpstreamServer): PrefixTexts {
  const text = (bytes: Uint8Array) => String.fromCharCode(...bytes);
  return {
    ...(server.prefix ? { prefix: text(server.prefix) } : {}),
    ...(server.udpPrefix ? { udpPrefix: text(server.udpPrefix) } : {}),
  };
}

function prefixTexts(obj: RawConfig, where: string): PrefixTexts {
  const prefix = optional(obj, "prefix", asString, where);
  const udpPrefix = optional(obj, "udp_prefix", asString, where);
  return {
    ...(prefix ? { prefix } : {}),
    ...(udpPrefix ? { udpPrefix } : {}),
  };
}

/**
 * Checks the prefixes against the method's salt (NOTES-2 §20.5): at least 12 salt bytes must
 * stay random; a UDP prefix needs an AEAD-2017 method, since 2022 UDP packets have no salt.
 */
function prefixes(
  texts: PrefixTexts,
  method: string,
  where: string,
  warnings: string[],
): { prefix?: Uint8Array; udpPrefix?: Uint8Array } {
  const info = resolveMethod(method);
  const at = where ? `${where}.` : "";
  const result: { prefix?: Uint8Array; udpPrefix?: Uint8Array } = {};
  if (texts.prefix !== undefined) {
    result.prefix = prefixFromCodePoints(texts.prefix, `${at}prefix`);
    const warning = checkPrefix(result.prefix, info.saltSize, `${at}prefix`);
    if (warning) warnings.push(warning);
  }
  if (texts.udpPrefix !== undefined) {
    if (info.family !== "aead") {
      throw new ConfigError(
        `Invalid ${at}udp_prefix: ${info.name} UDP packets have no salt to prefix (AEAD-2017 only)`,
      );
    }
    result.udpPrefix = prefixFromCodePoints(texts.udpPrefix, `${at}udp_prefix`);
    const warning = checkPrefix(result.udpPrefix, info.saltSize, `${at}udp_prefix`);
    if (warning) warnings.push(warning);
  }
  return result;
}

/** Where a client role's online config (SIP008) comes from, when it has one. */
export interface OnlineConfigSpec {
  url: string;
  updateIntervalS: number;
  /** Entries with legacy stream ciphers are kept (`allow_insecure_ciphers`). */
  allowInsecure: boolean;
  /** Said once at start (plain HTTP). */
  warnings: string[];
}

/**
 * The online config of `file` overlaid with `flags`: `--server-url URL` (`server_url`) or
 * shadowsocks-rust's `online_config: { config_url, update_interval }`. HTTPS is required except
 * to a loopback address (a test or an SSH tunnel), since the document holds passwords.
 */
export function onlineConfigSpec(
  file: RawConfig,
  flags: RawConfig = {},
): OnlineConfigSpec | undefined {
  const raw = { ...file, ...definedOnly(flags) };
  const block = optional(raw, "online_config", asObject);
  const flagUrl = optional(raw, "server_url", asString);
  const url = flagUrl ??
    (block && optional(block, "config_url", asString, "online_config."));
  if (block !== undefined && url === undefined) {
    throw new ConfigError(`Missing online_config.config_url: the SIP008 document's https:// URL`);
  }
  if (url === undefined) return undefined;
  const name = flagUrl !== undefined ? "server_url" : "online_config.config_url";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`Invalid ${name}: expected an https:// URL`);
  }
  const warnings: string[] = [];
  if (parsed.protocol === "http:") {
    if (!isLoopbackHost(parsed.hostname)) {
      throw new ConfigError(
        `Invalid ${name}: plain http:// would send the servers' passwords in clear; use https://`,
      );
    }
    warnings.push(`${name} uses plain http:// (allowed on loopback only)`);
  } else if (parsed.protocol !== "https:") {
    throw new ConfigError(`Invalid ${name}: expected an https:// URL, got ${parsed.protocol}`);
  }
  const interval = (block &&
    optional(block, "update_interval", asSeconds, "online_config.")) ??
    DEFAULT_ONLINE_UPDATE_INTERVAL_S;
  if (interval < 1) {
    throw new ConfigError(`Invalid online_config.update_interval: expected 1 second or more`);
  }
  const allowInsecure = optional(raw, "allow_insecure_ciphers", asBoolean) ?? false;
  return { url, updateIntervalS: interval, allowInsecure, warnings };
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A SIP008 document's servers, and its optional data usage. */
export interface Sip008Servers {
  servers: UpstreamServer[];
  bytesUsed?: number;
  bytesRemaining?: number;
  /** Servers left out and why (no password in the text). */
  warnings: string[];
}

/**
 * Validates a fetched SIP008 document (NOTES §11): `version` 1, and per server the mandatory
 * `server`, `server_port`, `password` and `method`. An entry that is wrong is left out with a
 * warning, so one typo on the provider's side does not take every server away; a document with
 * no usable entry throws.
 */
export function sip008Servers(doc: RawConfig, allowInsecure = false): Sip008Servers {
  if (doc["version"] !== 1) {
    throw new ConfigError(
      `Invalid SIP008 document: "version" is ${
        JSON.stringify(doc["version"]) ?? "missing"
      }, expected 1`,
    );
  }
  const list = asList(doc["servers"] ?? null, "servers");
  const warnings: string[] = [];
  const servers: UpstreamServer[] = [];
  list.forEach((item, i) => {
    const where = `servers[${i}]`;
    try {
      const obj = asObject(item, where);
      for (const key of ["server", "server_port", "password", "method"]) {
        const alias = key === "server" ? "address" : key === "server_port" ? "port" : key;
        if (obj[key] === undefined && obj[alias] === undefined) {
          throw new ConfigError(`Missing ${where}.${key}: SIP008 requires it`);
        }
      }
      const fields = serverItem(obj, where, 1, []);
      if (fields === undefined) return;
      const upstream: UpstreamServer = {
        server: fields.address,
        serverPort: fields.port,
        ...credentials(fields.method!, fields.password, where),
      };
      if (fields.plugin !== undefined) upstream.plugin = fields.plugin;
      if (fields.remarks !== undefined) upstream.remarks = fields.remarks;
      Object.assign(upstream, prefixes(fields.prefixes ?? {}, upstream.method, where, warnings));
      checkClientKeys(upstream, where);
      checkMethods([{ method: upstream.method, where }], allowInsecure, []);
      servers.push(upstream);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      warnings.push(`left out: ${error.message}`);
    }
  });
  if (servers.length === 0) {
    throw new ConfigError(
      `Invalid SIP008 document: no usable server${
        warnings.length ? ` (${warnings.join("; ")})` : ""
      }`,
    );
  }
  const result: Sip008Servers = { servers, warnings };
  const used = optional(doc, "bytes_used", asByteCount);
  const remaining = optional(doc, "bytes_remaining", asByteCount);
  if (used !== undefined) result.bytesUsed = used;
  if (remaining !== undefined) result.bytesRemaining = remaining;
  return result;
}

function asByteCount(value: unknown, name: string): number {
  return asInteger(value, name, 0, Number.MAX_SAFE_INTEGER, "a number of bytes");
}

function checkSip008Version(raw: RawConfig): void {
  if (raw["version"] !== undefined && raw["version"] !== 1) {
    throw invalid("version", raw["version"], "1 (a SIP008 document)");
  }
}

/** The validated `ssdeno tunnel` config: a local config plus its fixed target. */
export function buildTunnelConfig(
  file: RawConfig,
  flags: RawConfig = {},
  online?: readonly UpstreamServer[],
): { config: TunnelConfig; warnings: string[]; process: ProcessSettings } {
  const { config, warnings, process } = buildLocalConfig(file, flags, online);
  const text = optional({ ...file, ...definedOnly(flags) }, "tunnel_address", asString);
  if (text === undefined) {
    throw new ConfigError(
      `Missing tunnel target: pass -L host:port or set "tunnel_address" in the config file`,
    );
  }
  let target;
  try {
    target = parseHostPort(text);
  } catch (error) {
    throw new ConfigError(`Invalid tunnel_address: ${(error as Error).message}`);
  }
  return {
    config: { ...config, tunnelHost: target.host, tunnelPort: target.port },
    warnings,
    process,
  };
}

function definedOnly(raw: RawConfig): RawConfig {
  return Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
}

/** The method table entry for `name`; an unknown name lists the valid ones. */
export function resolveMethod(name: string, key = "method"): MethodInfo {
  const info = findMethod(name);
  if (info === undefined) {
    const secure = METHOD_NAMES.filter((method) => findMethod(method)?.family !== "stream");
    const legacy = METHOD_NAMES.filter((method) => findMethod(method)?.family === "stream");
    throw invalid(
      key,
      name,
      `one of ${secure.join(", ")} (or, with --allow-insecure-ciphers, ${legacy.join(", ")})`,
    );
  }
  return info;
}

/**
 * The legacy stream ciphers run only when asked for (`allow_insecure_ciphers`), and then with a
 * warning per method; a method this machine's crypto cannot run is refused here, before
 * anything starts.
 */
function checkMethods(
  used: readonly { method: string; where: string }[],
  allowInsecure: boolean,
  warnings: string[],
): void {
  const warned = new Set<string>();
  for (const { method, where } of used) {
    const info = resolveMethod(method);
    const name = where ? `${where}.method` : "method";
    if (info.family === "stream") {
      if (!allowInsecure) {
        throw new ConfigError(
          `Invalid ${name} "${info.name}": a legacy stream cipher, insecure (no integrity: ` +
            "traffic can be altered undetected, and recorded connections replayed to probe " +
            "the server); for old clients that need it, pass --allow-insecure-ciphers " +
            '(or set "allow_insecure_ciphers": true)',
        );
      }
      if (!warned.has(info.name)) {
        warned.add(info.name);
        warnings.push(
          `Method ${info.name} is a legacy stream cipher and insecure: use an AEAD method ` +
            "(2022-blake3-aes-128-gcm, chacha20-ietf-poly1305, …) once the clients allow it",
        );
      }
    }
    const unavailable = methodUnavailableReason(info);
    if (unavailable !== undefined) {
      throw new ConfigError(`Invalid ${name} "${info.name}": ${unavailable}`);
    }
  }
}

/** What one listener or one remote server may set for itself. */
interface ListenerFields {
  address: string;
  port: number;
  password: string | undefined;
  method?: string;
  mode?: Mode;
  timeout?: number;
  users?: ServerUser[];
  plugin?: PluginConfig;
  /** A display name (`remarks`, or rust's `name`). */
  remarks?: string;
  /** `prefix` and `udp_prefix` as written (client roles). */
  prefixes?: PrefixTexts;
  /** Prefix for error messages, e.g. `servers[1]`; empty for top-level keys. */
  where: string;
}

/**
 * libev's `key` / `--key`: the master key itself, base64, instead of a password. For 2022
 * methods that is what the password already is; for the others it is carried in the password's
 * place (crypto/kdf.ts `passwordForKey`) and checked against the method's key size.
 */
function applyKey(raw: RawConfig): void {
  const key = optional(raw, "key", (v, n) => asString(v, n, true));
  if (key === undefined) return;
  if (raw["password"] !== undefined) {
    throw new ConfigError(`Conflicting password and key: give one of -k/--password or --key`);
  }
  const info = resolveMethod(optional(raw, "method", asString) ?? DEFAULT_METHOD);
  // libev writes and reads the URL-safe alphabet; the standard one is accepted too.
  const standard = key.replaceAll("-", "+").replaceAll("_", "/");
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(standard), (c) => c.charCodeAt(0));
  } catch {
    throw invalid("key", key, "base64", true);
  }
  if (bytes.length !== info.keySize || info.family === "none" || info.stream === "table") {
    throw new ConfigError(
      `Invalid key: ${info.name} needs a key of ${info.keySize} bytes (base64), got ${bytes.length}`,
    );
  }
  raw["password"] = info.family === "aead2022" ? standard : passwordForKey(standard);
}

/** Flags win over the file; endpoint flags also replace the file's listener lists. */
function overlay(file: RawConfig, flags: RawConfig, warnings: string[]): RawConfig {
  for (const key of Object.keys(file)) {
    if (!USED_KEYS.has(key) && !(key in IGNORED_KEYS) && !SIP008_KEYS.has(key)) {
      warnings.push(`Ignoring unknown config key "${key}"`);
    }
  }
  const raw: RawConfig = { ...file };
  for (const [key, value] of Object.entries(flags)) {
    if (value !== undefined) raw[key] = value;
  }
  if (ENDPOINT_KEYS.some((key) => flags[key] !== undefined)) {
    for (const key of ["port_password", "servers"]) {
      if (raw[key] !== undefined) {
        warnings.push(`Ignoring ${key} from the config file: the command line names the server`);
        delete raw[key];
      }
    }
  }
  for (const [key, check] of Object.entries(IGNORED_KEYS)) {
    const warning = raw[key] === undefined || raw[key] === null ? undefined : check(raw[key], key);
    if (warning !== undefined) warnings.push(warning);
  }
  applyKey(raw);
  return raw;
}

/** Settings every listener shares; method and password are checked per listener. */
function commonSettings(raw: RawConfig): Omit<CommonConfig, "password"> {
  // Keys only the other role reads are still checked: a file is often shared by both.
  optional(raw, "allow_private_targets", asBoolean);
  optional(raw, "ipv6_first", asBoolean);
  optional(raw, "local_address", asString);
  optional(raw, "local_port", (v, n) => asPort(v, n, 0));
  return {
    method: optional(raw, "method", asString) ?? DEFAULT_METHOD,
    timeout: optional(raw, "timeout", asSeconds) ?? 300,
    handshakeTimeout: optional(raw, "handshake_timeout", asSeconds) ?? 10,
    mode: optional(raw, "mode", asMode) ?? "tcp_only",
    noDelay: optional(raw, "no_delay", asBoolean) ?? true,
    udpTimeout: optional(raw, "udp_timeout", asSeconds) ?? 300,
    udpMaxAssociations: optional(
      raw,
      "udp_max_associations",
      (v, n) => asInteger(v, n, 1, Number.MAX_SAFE_INTEGER, "a positive integer"),
    ) ?? 2048,
    gracePeriod: optional(raw, "grace_period", asSeconds) ?? DEFAULT_GRACE_PERIOD,
    ...pluginField(pluginOf(raw, "")),
  };
}

/** Checks the method name and that a password is present unless the method needs none. */
function credentials(
  method: string,
  password: string | undefined,
  where: string,
): { method: string; password: string } {
  const info = resolveMethod(method, where ? `${where}.method` : "method");
  if (info.family === "none") return { method: info.name, password: password ?? "" };
  if (!password) {
    throw new ConfigError(
      where
        ? `Missing password for ${where}: set "password" in that entry or at the top level`
        : `Missing password: set "password" in the config file or pass -k/--password or --url`,
    );
  }
  return { method: info.name, password };
}

/** One `servers[]` item, or `undefined` when it is `disabled`. */
function serverItem(
  item: unknown,
  where: string,
  minPort: 0 | 1,
  warnings: string[],
): ListenerFields | undefined {
  const obj = asObject(item, where);
  for (const key of Object.keys(obj)) {
    if (!ITEM_KEYS.has(key)) warnings.push(`Ignoring unknown config key "${where}.${key}"`);
  }
  const get = <T>(key: string, check: (value: unknown, name: string) => T) =>
    optional(obj, key, check, `${where}.`);
  if (get("disabled", asBoolean)) return undefined;
  const plugin = pluginOf(obj, `${where}.`);

  const hostText = get("server", asString) ?? get("address", asString) ?? "0.0.0.0";
  const { host, port: inlinePort } = splitHostPort(hostText, `${where}.server`);
  const port = get("server_port", (v, n) => asPort(v, n, minPort)) ??
    get("port", (v, n) => asPort(v, n, minPort)) ?? inlinePort;
  if (port === undefined) {
    throw new ConfigError(`Missing ${where}.server_port: each server needs a port`);
  }
  const fields: ListenerFields = {
    address: host,
    port,
    password: get("password", (v, n) => asString(v, n, true)),
    where,
  };
  const method = get("method", asString);
  const mode = get("mode", asMode);
  const timeout = get("timeout", asSeconds);
  const users = get("users", asUsers);
  if (users !== undefined) fields.users = users;
  const remarks = get("remarks", asString) ?? get("name", asString);
  if (remarks) fields.remarks = remarks;
  const texts = prefixTexts(obj, `${where}.`);
  if (texts.prefix !== undefined || texts.udpPrefix !== undefined) fields.prefixes = texts;
  get("id", asString);
  if (plugin !== undefined) fields.plugin = plugin;
  if (method !== undefined) fields.method = method;
  if (mode !== undefined) fields.mode = mode;
  if (timeout !== undefined) fields.timeout = timeout;
  return fields;
}

/**
 * `users` (SIP023 multi-user, as shadowsocks-rust reads it): a non-empty list of
 * `{ "name": "...", "password": "<base64 uPSK>" }` with distinct names.
 */
function asUsers(value: unknown, name: string): ServerUser[] {
  const list = asList(value, name);
  if (list.length === 0) {
    throw new ConfigError(`Invalid ${name}: the list is empty, so nobody could connect`);
  }
  const seen = new Set<string>();
  return list.map((item, i) => {
    const obj = asObject(item, `${name}[${i}]`);
    const userName = asString(obj["name"], `${name}[${i}].name`);
    if (userName === "") throw new ConfigError(`Invalid ${name}[${i}].name: it is empty`);
    if (seen.has(userName)) {
      throw new ConfigError(`Invalid ${name}[${i}].name "${userName}": used twice`);
    }
    seen.add(userName);
    const user: ServerUser = {
      name: userName,
      password: asString(obj["password"], `${name}[${i}].password`, true),
    };
    const limit = optional(
      obj,
      "data_limit",
      (v, n) => asInteger(v, n, 0, Number.MAX_SAFE_INTEGER, "a number of bytes"),
      `${name}[${i}].`,
    );
    if (limit !== undefined) user.dataLimit = limit;
    const expires = optional(obj, "expires", asExpiry, `${name}[${i}].`);
    if (expires !== undefined) user.expiresAt = expires;
    const maxIps = optional(
      obj,
      "max_client_ips",
      (v, n) => asInteger(v, n, 1, 1_000_000, "a number of IP addresses from 1"),
      `${name}[${i}].`,
    );
    if (maxIps !== undefined) user.maxClientIps = maxIps;
    return user;
  });
}

/**
 * A user's `expires`: an RFC 3339 date-time with its offset ("2027-01-31T00:00:00Z"), or a
 * date alone (midnight UTC), or Unix seconds. Returns ms since the epoch.
 */
export function asExpiry(value: unknown, name: string): number {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0 || value > 253402300799) {
      throw new ConfigError(`Invalid ${name} ${value}: expected Unix seconds or a date`);
    }
    return value * 1000;
  }
  const text = asString(value, name);
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  const dateTime = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/
    .test(text);
  const at = dateOnly ? Date.parse(`${text}T00:00:00Z`) : dateTime ? Date.parse(text) : NaN;
  // Date.parse rolls "2027-02-30" over to March: the day must be one the month has.
  const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number];
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (Number.isNaN(at) || month < 1 || month > 12 || day < 1 || day > days) {
    throw invalid(name, text, 'a date ("2027-01-31"), a date-time with its offset or Unix seconds');
  }
  return at;
}

/**
 * 2022 keys are checked here, where a mistake is a user error that names the key; the services
 * parse the same keys again at start. The messages never contain key material.
 */
function checkServerKeys(config: ServerConfig, where: string): void {
  const info = resolveMethod(config.method);
  if (info.family !== "aead2022") {
    if (config.users === undefined) return;
    if (info.family !== "aead") {
      throw new ConfigError(
        `Invalid ${where ? `${where}.` : ""}users: multi-user needs an AEAD method, ` +
          `not "${config.method}"`,
      );
    }
    if (config.users.length > MAX_AEAD_USERS) {
      throw new ConfigError(
        `Invalid ${where ? `${where}.` : ""}users: ${config.users.length} users on one ` +
          `AEAD-2017 port; at most ${MAX_AEAD_USERS} (each connection tries their keys in turn)`,
      );
    }
    return;
  }
  keyError(where, () => serverKeys2022(info, config.password, config.users));
}

function checkClientKeys(config: Pick<LocalConfig, "method" | "password">, where: string): void {
  const info = resolveMethod(config.method);
  if (info.family === "aead2022") keyError(where, () => clientKeys2022(info, config.password));
}

function keyError(where: string, check: () => unknown): void {
  try {
    check();
  } catch (error) {
    if (error instanceof InvalidPskError || error instanceof RangeError) {
      throw new ConfigError(`${where ? `${where}: ` : ""}${error.message}`);
    }
    throw error;
  }
}

/** Two listeners on one address and port would fail at bind time with a vaguer message. */
function checkDuplicates(listeners: readonly ServerConfig[]): void {
  const seen = new Set<string>();
  for (const { address, port } of listeners) {
    const key = `${address}|${port}`;
    if (port !== 0 && seen.has(key)) {
      throw new ConfigError(
        `Duplicate listener "${address}" port ${port}: two config entries use the same one`,
      );
    }
    seen.add(key);
  }
}

/** libev's `"host:port"` server items; a bare IPv6 address (two or more colons) has no port. */
function splitHostPort(text: string, name: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  let host = text;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (text.indexOf(":") !== -1 && text.indexOf(":") === text.lastIndexOf(":")) {
    host = text.slice(0, text.indexOf(":"));
    portText = text.slice(text.indexOf(":") + 1);
  }
  if (!host) throw invalid(name, text, "a host name or IP address");
  if (portText === undefined) return { host };
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(name, text, `"host:port" with a port from 1 to 65535`);
  }
  return { host, port };
}

function unbracket(host: string): string {
  return /^\[.*\]$/.test(host) ? host.slice(1, -1) : host;
}

/** Name of item `i` of a key that may be a string or a list. */
function listName(key: string, value: unknown, i: number): string {
  return Array.isArray(value) ? `${key}[${i}]` : key;
}

function optional<T>(
  obj: RawConfig,
  key: string,
  check: (value: unknown, name: string) => T,
  prefix = "",
): T | undefined {
  const value = obj[key];
  // null is "not set", as shadowsocks-rust reads it.
  return value === undefined || value === null ? undefined : check(value, prefix + key);
}

function asString(value: unknown, name: string, secret = false): string {
  if (typeof value !== "string") throw invalid(name, value, "a string", secret);
  return value;
}

function asBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw invalid(name, value, "true or false");
  return value;
}

function asList(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw invalid(name, value, "a list");
  return value;
}

function asObject(value: unknown, name: string): RawConfig {
  if (!isObject(value)) throw invalid(name, value, "an object");
  return value;
}

/** A string or a non-empty list of non-empty strings, always returned as a list. */
function asStringList(value: unknown, name: string): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || !list.every((item) => typeof item === "string" && item !== "")) {
    throw invalid(name, value, "a string or a list of strings");
  }
  return list as string[];
}

function asInteger(value: unknown, name: string, min: number, max: number, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, value, what);
  }
  return value;
}

/** Ports from 1; listening ports may also be 0, which asks the OS for a free one. */
function asPort(value: unknown, name: string, min: 0 | 1): number {
  return asInteger(value, name, min, 65535, `an integer from ${min} to 65535`);
}

function asSeconds(value: unknown, name: string): number {
  if (typeof value !== "number" || !(value > 0) || value > MAX_SECONDS) {
    throw invalid(name, value, `a number of seconds above 0 and at most ${MAX_SECONDS}`);
  }
  return value;
}

function asMode(value: unknown, name: string): Mode {
  const mode = MODES.find((m) => m === value);
  if (mode === undefined) throw invalid(name, value, `one of ${MODES.join(", ")}`);
  return mode;
}

function booleanNotice(value: unknown, name: string, notice: string): string | undefined {
  return asBoolean(value, name) ? `Ignoring ${name}: ${notice}` : undefined;
}

/** `Invalid <name> <value>: expected <what>`; secrets show only their type. */
function invalid(name: string, value: unknown, what: string, secret = false): ConfigError {
  const shown = secret || (typeof value !== "string" && typeof value !== "number" &&
      typeof value !== "boolean")
    ? `(${kind(value)})`
    : JSON.stringify(value);
  return new ConfigError(`Invalid ${name} ${shown}: expected ${what}`);
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "a boolean";
  return "a string";
}

function isObject(value: unknown): value is RawConfig {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The offset V8 put in its message, when it did. */
function v8Offset(message: string): number | undefined {
  const match = /at position (\d+)/.exec(message);
  return match ? Number(match[1]) : undefined;
}

/** V8's reason without its own position and without the quoted text, which may hold secrets. */
function jsonReason(message: string): string {
  return message
    .replace(/ in JSON at position \d+.*$/s, "")
    .replace(/, .* is not valid JSON$/s, "")
    .replace(/^Unexpected end of JSON input$/, "Unexpected end of file");
}

/** `protocol` of a local: what its port speaks. rust's other values name other commands. */
function asProtocol(value: unknown, name: string): "mixed" | "socks" | "http" {
  const text = asString(value, name);
  if (text === "mixed" || text === "socks" || text === "http") return text;
  if (text === "tunnel") {
    throw new ConfigError(`Invalid ${name} "tunnel": run \`ssdeno tunnel\` with tunnel_address`);
  }
  throw invalid(name, value, "mixed, socks or http");
}

/**
 * `local_users`: who may use the local's port, `[{ "name": "...", "password": "..." }]`
 * (`user_name`, shadowsocks-rust's spelling in its auth files, is accepted too).
 */
function asLocalUsers(value: unknown, name: string): LocalUser[] {
  const list = asList(value, name);
  if (list.length === 0) {
    throw new ConfigError(`Invalid ${name}: the list is empty, so nobody could connect`);
  }
  const seen = new Set<string>();
  return list.map((item, i) => {
    const where = `${name}[${i}]`;
    const obj = asObject(item, where);
    const userName = asString(obj["name"] ?? obj["user_name"], `${where}.name`);
    if (userName === "" || userName.length > 255) {
      throw new ConfigError(`Invalid ${where}.name: expected 1 to 255 characters`);
    }
    if (seen.has(userName)) {
      throw new ConfigError(`Invalid ${where}.name "${userName}": used twice`);
    }
    seen.add(userName);
    const password = asString(obj["password"], `${where}.password`, true);
    if (password.length > 255) {
      throw new ConfigError(`Invalid ${where}.password: expected at most 255 characters`);
    }
    return { name: userName, password };
  });
}

/** `balancer`: `{ "check_interval": seconds, "check_target": "host:port" }`. */
function asBalancer(value: unknown, name: string): NonNullable<LocalConfig["balancer"]> {
  const obj = asObject(value, name);
  const interval = optional(obj, "check_interval", asSeconds, `${name}.`) ?? 30;
  const target = optional(obj, "check_target", asString, `${name}.`);
  if (target !== undefined) splitHostPort(target, `${name}.check_target`);
  return target === undefined
    ? { checkIntervalS: interval }
    : { checkIntervalS: interval, checkTarget: target };
}

/** Reads and parses the ACL file at `path`; its warnings join the config's. */
function readAcl(path: string, warnings: string[], forbidden: string[] = []): AclFile {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(`Cannot read acl "${path}": ${(error as Error).message}`);
  }
  try {
    const acl = parseAcl(forbidden.length ? `${text}\n${blockSection(forbidden)}` : text);
    warnings.push(...acl.warnings.map((warning) => `acl "${path}": ${warning}`));
    return acl;
  } catch (error) {
    if (error instanceof AclError) throw new ConfigError(`Invalid acl "${path}": ${error.message}`);
    throw error;
  }
}

/**
 * `forbidden_ip` (the Python original's key, also `--forbidden-ip`): IPs and CIDRs, as a list or
 * comma-separated, refused as targets on top of the private-address policy. Each must be an IP
 * or CIDR; `""` (which cleared the Python default of loopback) adds nothing, since loopback is
 * refused here unless `allow_private_targets` is set.
 */
function asCidrList(value: unknown, name: string): string[] {
  if (value === "") return [];
  const entries = asStringList(value, name).flatMap((item) => item.split(","))
    .map((item) => item.trim()).filter((item) => item !== "");
  for (const entry of entries) {
    const probe = parseAcl(blockSection([entry]));
    if (
      probe.ruleCount !== 1 || probe.warnings.length > 0 || !/^[0-9a-fA-F:.]+(\/\d+)?$/.test(entry)
    ) {
      throw invalid(name, entry, "IP addresses or CIDRs, e.g. 10.0.0.0/8,fd00::/8");
    }
  }
  return entries;
}

/** An ACL section that blocks `entries` as targets. */
function blockSection(entries: readonly string[]): string {
  return `[outbound_block_list]\n${entries.join("\n")}\n`;
}

/**
 * shadowsocks-rust's `locals: [{ local_address, local_port, protocol, … }]`: the first entry's
 * keys stand in for the top-level ones it does not set. One listener per local is served.
 */
function withFirstLocal(file: RawConfig, warnings: string[]): RawConfig {
  if (file["locals"] === undefined) return file;
  const locals = asList(file["locals"], "locals");
  const first = locals[0] === undefined ? {} : asObject(locals[0], "locals[0]");
  if (locals.length > 1) {
    warnings.push(`Serving only locals[0] of ${locals.length}: run one ssdeno local per listener`);
  }
  const known = ["local_address", "local_port", "protocol", "mode", "acl"];
  for (const key of Object.keys(first)) {
    if (!known.includes(key)) warnings.push(`Ignoring unknown config key "locals[0].${key}"`);
  }
  const merged: RawConfig = { ...file };
  delete merged["locals"];
  for (const key of known) {
    if (first[key] !== undefined && merged[key] === undefined) merged[key] = first[key];
  }
  return merged;
}

/** `metrics`: `host:port`, or a bare port on 127.0.0.1 (metrics stay on this machine by default). */
function asMetricsAddress(value: unknown, name: string): { host: string; port: number } {
  const text = typeof value === "number" ? String(value) : asString(value, name);
  if (/^[0-9]+$/.test(text)) return { host: "127.0.0.1", port: asPort(Number(text), name, 0) };
  const { host, port } = splitHostPort(text, name);
  if (port === undefined) throw invalid(name, value, "host:port or a port number");
  return { host, port };
}

/** Keys that describe the listeners of a file, which a managed listener does not inherit. */
const LISTENER_KEYS = ["servers", "port_password", "server_port", "password", "users"];

/**
 * The listener an ss-manager `add` asks for: the command's port, password, method, mode and
 * users over the rest of the server's settings (address, timeouts, ACL, …), validated as a
 * config file would be. Throws `ConfigError` naming the problem.
 */
export function managedServerConfig(
  file: RawConfig,
  flags: RawConfig,
  request: Record<string, unknown>,
): ServerConfig {
  const base: RawConfig = { ...file, ...definedOnly(flags) };
  for (const key of [...LISTENER_KEYS, "manager_address", "metrics"]) delete base[key];
  const { configs } = buildServerConfigs({ ...base, ...request });
  return configs[0]!;
}

/**
 * `api`, `api_token`, `api_secret_path`. Off loopback the API changes who may use the server,
 * so it must not be open to anyone who finds the port: a token or a secret path is required.
 */
function apiSettings(raw: RawConfig, name = "api"): ServerConfigs["api"] {
  const where = optional(raw, name, asMetricsAddress);
  const token = optional(raw, `${name}_token`, (v, n) => asString(v, n, true));
  const secretPath = optional(raw, `${name}_secret_path`, asString);
  if (where === undefined) return undefined;
  if (secretPath !== undefined && !/^\/[A-Za-z0-9._~-]{8,}$/.test(secretPath)) {
    throw new ConfigError(
      `Invalid ${name}_secret_path: expected "/" and at least 8 letters, digits or ._~-`,
    );
  }
  const loopback = where.host === "localhost" || where.host === "::1" ||
    where.host.startsWith("127.");
  if (!loopback && token === undefined && secretPath === undefined) {
    throw new ConfigError(
      `Invalid ${name} "${where.host}:${where.port}": off loopback it needs ${name}_token or ${name}_secret_path`,
    );
  }
  return {
    ...where,
    ...(token === undefined ? {} : { token }),
    ...(secretPath === undefined ? {} : { secretPath }),
  };
}

/** `plugin`, `plugin_opts`, `plugin_args` of a file, a `servers[]` item or the flags. */
function pluginOf(raw: RawConfig, where: string): PluginConfig | undefined {
  const name = optional(raw, "plugin", asString, where);
  const options = optional(raw, "plugin_opts", asString, where);
  const args = optional(raw, "plugin_args", asStringList, where);
  const mode = optional(raw, "plugin_mode", asPluginMode, where);
  if (name === undefined || name === "") {
    // SIP008 writes an empty plugin_opts when there is no plugin.
    if ((options !== undefined && options !== "") || args !== undefined || mode !== undefined) {
      throw new ConfigError(
        `Invalid ${where}plugin_opts: there is no ${where}plugin to give them to`,
      );
    }
    return undefined;
  }
  return {
    name,
    ...(options === undefined ? {} : { options }),
    ...(args === undefined ? {} : { args }),
    ...(mode === undefined || mode === "tcp_only" ? {} : { mode }),
  };
}

/** `plugin_mode`: which transports go through the plugin (SIP003u adds UDP). */
function asPluginMode(value: unknown, name: string): "tcp_only" | "tcp_and_udp" {
  if (value === "tcp_only" || value === "tcp_and_udp") return value;
  if (value === "udp_only") {
    throw new ConfigError(
      `Invalid ${name} "udp_only": TCP always goes through the plugin; use tcp_and_udp for UDP too`,
    );
  }
  throw invalid(name, value, `"tcp_only" or "tcp_and_udp"`);
}

function pluginField(plugin: PluginConfig | undefined): { plugin?: PluginConfig } {
  return plugin === undefined ? {} : { plugin };
}
