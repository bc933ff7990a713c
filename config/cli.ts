/**
 * The command line: `ssdeno server|local|url|genkey [flags]`, with shadowsocks-libev's flags.
 * Flags are turned into config-file keys (`-p` → `server_port`) so that one validator in
 * `load.ts` checks file and flags alike, and flags simply win over the file.
 * @module
 */

import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { decodeSip002 } from "../protocol/sip002.ts";
import { ConfigError } from "./errors.ts";
import { type RawConfig, readConfigFile } from "./load.ts";

/** The program version, from deno.json. */
export const VERSION: string = denoConfig.version;

/** Subcommands that do work (as opposed to `--help` and `--version`). */
/** How much to log (the same levels as relay/log.ts, which config/ must not import). */
export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

export type CommandName = "server" | "local" | "tunnel" | "url" | "genkey";

const COMMANDS: readonly CommandName[] = ["server", "local", "tunnel", "url", "genkey"];

/** What the command line asks for. */
export type CliCommand =
  | { name: "help" }
  | { name: "version" }
  | {
    name: CommandName;
    /** The `-c` path, when given. */
    configPath?: string;
    /** The `-c` file, parsed (only from `parseCli`). */
    file?: RawConfig;
    /** Flag values under their config-file keys; they override `file`. */
    flags: RawConfig;
    logLevel: LogLevel;
  };

/** Help text for `ssdeno --help`. */
export const USAGE = `ssdeno ${VERSION}: a Shadowsocks server and SOCKS5 local proxy

Usage: ssdeno <command> [flags]

Commands:
  server    Run a Shadowsocks server (with no password given: use or create ./ssdeno.json)
  local     Run a SOCKS5 proxy that forwards through a Shadowsocks server
  tunnel    Forward a local port to a fixed target (-L) through a Shadowsocks server
  url       Print the ss:// URI and QR code of a config, then exit
  genkey    Print a new random password, then exit

Flags (flags override the config file):
  -c, --config FILE          JSON config file (shadowsocks-libev / -rust format)
  -s, --server HOST          Server address (server: address to listen on); repeatable
  -p, --server-port PORT     Server port (server: port to listen on, 0 for any free port)
  -b, --local-address ADDR   Local SOCKS5 listen address (default 127.0.0.1)
  -l, --local-port PORT      Local SOCKS5 listen port (default 1080)
  -k, --password PASS        Password
  -m, --method METHOD        Cipher method (default chacha20-ietf-poly1305)
  -t, --timeout SECONDS      Idle timeout of a TCP session (default 300)
      --handshake-timeout S  Deadline for a session's handshake (default 10)
  -L, --tunnel-address H:P   Target of the tunnel command, e.g. 1.1.1.1:53
  -u                         Relay TCP and UDP
  -U                         Relay UDP only
      --url ss://...         Take method, password, host and port from a SIP002 URI
      --plugin NAME          SIP003 plugin (not supported yet)
      --plugin-opts OPTS     SIP003 plugin options (not supported yet)
      --allow-private-targets  Let clients reach loopback and private addresses
      --no-delay             Set TCP_NODELAY (the default)
      --ipv6-first           Prefer IPv6 addresses of targets
  -v, --verbose              More logging: -v debug, -vv trace
  -q, --quiet                Log warnings and errors only
  -h, --help                 Show this help
      --version              Show the version
`;

const OPTIONS = {
  config: { type: "string", short: "c" },
  server: { type: "string", short: "s", multiple: true },
  "server-port": { type: "string", short: "p" },
  "local-address": { type: "string", short: "b" },
  "local-port": { type: "string", short: "l" },
  password: { type: "string", short: "k" },
  method: { type: "string", short: "m" },
  timeout: { type: "string", short: "t" },
  "handshake-timeout": { type: "string" },
  "tunnel-address": { type: "string", short: "L" },
  "tcp-and-udp": { type: "boolean", short: "u" },
  "udp-only": { type: "boolean", short: "U" },
  url: { type: "string" },
  plugin: { type: "string" },
  "plugin-opts": { type: "string" },
  "allow-private-targets": { type: "boolean" },
  "no-delay": { type: "boolean" },
  "ipv6-first": { type: "boolean" },
  verbose: { type: "boolean", short: "v", multiple: true },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

/** Parses the arguments without any I/O; `configPath` is returned, not read. */
export function parseCommandLine(args: readonly string[]): CliCommand {
  const { values, positionals } = parse(args);
  if (values.help) return { name: "help" };
  if (values.version) return { name: "version" };

  const [commandText, ...extra] = positionals;
  const name = COMMANDS.find((command) => command === commandText);
  if (commandText === undefined) {
    throw new ConfigError(`Missing command: expected one of ${COMMANDS.join(", ")}`);
  }
  if (name === undefined) {
    throw new ConfigError(
      `Unknown command "${commandText}": expected one of ${COMMANDS.join(", ")}`,
    );
  }
  if (extra[0] !== undefined) throw new ConfigError(`Unexpected argument "${extra[0]}"`);

  const verbosity = values.verbose?.length ?? 0;
  if (values.quiet && verbosity > 0) {
    throw new ConfigError(`Conflicting flags -q and -v: choose one`);
  }
  if (values["tcp-and-udp"] && values["udp-only"]) {
    throw new ConfigError(`Conflicting flags -u and -U: choose TCP and UDP (-u) or UDP only (-U)`);
  }

  const flags: RawConfig = values.url === undefined ? {} : fromUrl(values.url);
  const set = (key: string, value: unknown) => {
    if (value !== undefined) flags[key] = value;
  };
  const servers = values.server;
  set("server", servers && servers.length === 1 ? servers[0] : servers);
  set("server_port", port(values["server-port"], "-p/--server-port"));
  set("local_address", values["local-address"]);
  set("local_port", port(values["local-port"], "-l/--local-port"));
  set("password", values.password);
  set("method", values.method);
  set("timeout", seconds(values.timeout, "-t/--timeout"));
  set("handshake_timeout", seconds(values["handshake-timeout"], "--handshake-timeout"));
  set("tunnel_address", values["tunnel-address"]);
  set("mode", values["tcp-and-udp"] ? "tcp_and_udp" : values["udp-only"] ? "udp_only" : undefined);
  set("plugin", values.plugin);
  set("plugin_opts", values["plugin-opts"]);
  set("allow_private_targets", values["allow-private-targets"]);
  set("no_delay", values["no-delay"]);
  set("ipv6_first", values["ipv6-first"]);

  const command: CliCommand = {
    name,
    flags,
    logLevel: values.quiet
      ? "warn"
      : verbosity === 0
      ? "info"
      : verbosity === 1
      ? "debug"
      : "trace",
  };
  if (values.config !== undefined) command.configPath = values.config;
  return command;
}

/** Parses the arguments and reads the `-c` file, if any. */
export async function parseCli(args: readonly string[]): Promise<CliCommand> {
  const command = parseCommandLine(args);
  if ("configPath" in command && command.configPath !== undefined) {
    command.file = await readConfigFile(command.configPath);
  }
  return command;
}

function parse(args: readonly string[]) {
  try {
    return parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw translateParseError(error);
  }
}

/** node:util's messages mention positionals and `--`; ours name the flag and stop there. */
function translateParseError(error: unknown): unknown {
  if (!(error instanceof Error) || !("code" in error)) return error;
  const quoted = /'([^']+)'/.exec(error.message)?.[1] ?? "";
  const flag = quoted.replace(/ <value>$/, "").replace(", ", "/");
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return new ConfigError(`Unknown flag "${flag}": see ssdeno --help for the flags`);
  }
  if (error.code !== "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return error;
  if (error.message.includes("does not take an argument")) {
    return new ConfigError(`Flag ${flag} does not take a value`);
  }
  if (error.message.includes("ambiguous")) {
    const long = /'(--[^=']+)=/.exec(error.message)?.[1] ?? flag;
    return new ConfigError(
      `Missing value for flag ${flag}: write a value that starts with "-" as ${long}=VALUE`,
    );
  }
  return new ConfigError(`Missing value for flag ${flag}`);
}

/** `--url`: the URI's fields under config keys; the individual flags may still override. */
function fromUrl(uri: string): RawConfig {
  const config = decodeSip002(uri);
  const flags: RawConfig = {
    server: config.host,
    server_port: config.port,
    method: config.method,
    password: config.password,
  };
  if (config.plugin !== undefined) flags["plugin"] = config.plugin;
  if (config.pluginOpts !== undefined) flags["plugin_opts"] = config.pluginOpts;
  return flags;
}

function port(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : -1;
  if (value < 0 || value > 65535) {
    throw new ConfigError(`Invalid ${flag} "${text}": expected an integer from 0 to 65535`);
  }
  return value;
}

function seconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) {
    throw new ConfigError(`Invalid ${flag} "${text}": expected a number of seconds`);
  }
  return Number(text);
}
