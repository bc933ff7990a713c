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
import { flagHelp, type Setting, SETTINGS } from "./schema.ts";

/** The program version, from deno.json. */
export const VERSION: string = denoConfig.version;

/** Subcommands that do work (as opposed to `--help` and `--version`). */
/** How much to log (the same levels as relay/log.ts, which config/ must not import). */
export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

export type CommandName = "server" | "local" | "tunnel" | "url" | "genkey" | "check";

const COMMANDS: readonly CommandName[] = ["server", "local", "tunnel", "url", "genkey", "check"];

/** What `ssdeno check` tests beyond the server: its own flags. */
export interface CheckFlags {
  /** `--target host:port`. */
  target?: string;
  /** `--udp-target host:port` (also checks UDP). */
  udpTarget?: string;
  /** `--fet`: evaluate the first packet against the FET exemption rules instead. */
  fet: boolean;
}

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
    /** `ssdeno check` only. */
    check?: CheckFlags;
  };

/** Help text for `ssdeno --help`; the settings' flags come from the schema table. */
export const USAGE = `ssdeno ${VERSION}: a Shadowsocks server and local proxy

Usage: ssdeno <command> [flags]

Commands:
  server    Run a Shadowsocks server (with no password given: use or create ./ssdeno.json)
  local     Run a SOCKS5/SOCKS4/HTTP proxy that forwards through Shadowsocks servers
  tunnel    Forward a local port to a fixed target (-L) through a Shadowsocks server
  url       Print the ss:// URI and QR code of a config, then exit
  check     Test a server end to end (check ss://... [--target H:P] [-u] [--fet])
  genkey    Print a new random password, then exit

Flags (flags override the config file):
  -c, --config FILE          JSON config file (shadowsocks-libev / -rust format)
${flagHelp().join("\n")}
  -u                         Relay TCP and UDP
  -U                         Relay UDP only
      --url ss://...         Take method, password, host and port from a SIP002 URI
      --target HOST:PORT     check: where the request goes (default www.google.com:443)
      --udp-target HOST:PORT check: also send a DNS query there over UDP (-u: 1.1.1.1:53)
      --fet                  check: rate first packets against the GFW's FET exemption rules
  -v, --verbose              More logging: -v debug, -vv trace
  -q, --quiet                Log warnings and errors only
  -h, --help                 Show this help
      --version              Show the version
`;

/** One parseArgs option. */
type OptionConfig = { type: "string" | "boolean"; short?: string; multiple?: boolean };

/** parseArgs options: the settings' flags, then the flags that are not settings. */
const OPTIONS: Record<string, OptionConfig> = {
  ...Object.fromEntries(
    SETTINGS.flatMap((setting) =>
      setting.flag === undefined ? [] : [[setting.flag, {
        type: setting.value === "true" ? "boolean" : "string",
        ...(setting.short ? { short: setting.short } : {}),
        ...(setting.value === "strings" ? { multiple: true } : {}),
      }]]
    ),
  ),
  config: { type: "string", short: "c" },
  "tcp-and-udp": { type: "boolean", short: "u" },
  "udp-only": { type: "boolean", short: "U" },
  url: { type: "string" },
  target: { type: "string" },
  "udp-target": { type: "string" },
  fet: { type: "boolean" },
  verbose: { type: "boolean", short: "v", multiple: true },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
};

/** Parses the arguments without any I/O; `configPath` is returned, not read. */
export function parseCommandLine(args: readonly string[]): CliCommand {
  const { values: parsed, positionals } = parse(args);
  const values = parsed as Record<string, string | boolean | string[] | boolean[] | undefined> & {
    help?: boolean;
    version?: boolean;
    verbose?: boolean[];
    quiet?: boolean;
    url?: string;
    config?: string;
    "tcp-and-udp"?: boolean;
    "udp-only"?: boolean;
    target?: string;
    "udp-target"?: string;
    fet?: boolean;
  };
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
  // `ssdeno check ss://...`: the URI may come as the argument.
  const uriArgument = name === "check" && extra[0]?.toLowerCase().startsWith("ss://")
    ? extra.shift()
    : undefined;
  if (extra[0] !== undefined) throw new ConfigError(`Unexpected argument "${extra[0]}"`);
  if (uriArgument !== undefined && values.url !== undefined) {
    throw new ConfigError(`Conflicting URIs: give the ss:// URI once, as --url or as the argument`);
  }
  const checkOnly = ["target", "udp-target", "fet"] as const;
  const misplaced = checkOnly.find((flag) => values[flag] !== undefined);
  if (name !== "check" && misplaced !== undefined) {
    throw new ConfigError(`Flag --${misplaced} belongs to ssdeno check`);
  }

  const verbosity = values.verbose?.length ?? 0;
  if (values.quiet && verbosity > 0) {
    throw new ConfigError(`Conflicting flags -q and -v: choose one`);
  }
  if (values["tcp-and-udp"] && values["udp-only"]) {
    throw new ConfigError(`Conflicting flags -u and -U: choose TCP and UDP (-u) or UDP only (-U)`);
  }

  const uri = values.url ?? uriArgument;
  const flags: RawConfig = uri === undefined ? {} : fromUrl(uri);
  const set = (key: string, value: unknown) => {
    if (value !== undefined) flags[key] = value;
  };
  for (const setting of SETTINGS) {
    if (setting.flag === undefined) continue;
    const name = `${setting.short ? `-${setting.short}/` : ""}--${setting.flag}`;
    set(setting.key, flagValue(setting, values[setting.flag], name));
  }
  set("mode", values["tcp-and-udp"] ? "tcp_and_udp" : values["udp-only"] ? "udp_only" : undefined);

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
  if (name === "check") {
    command.check = {
      fet: values.fet ?? false,
      ...(values.target !== undefined ? { target: values.target } : {}),
      ...(values["udp-target"] !== undefined ? { udpTarget: values["udp-target"] } : {}),
    };
  }
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

/**
 * shadowsocks-libev flags ssdeno cannot honour, with the reason: a libev command line that uses
 * one fails with that reason instead of "unknown flag" (README, "libev flags and keys").
 */
const UNSUPPORTED_LIBEV_FLAGS: Record<string, string> = {
  "-i": "binding to a network interface (SO_BINDTODEVICE) needs a socket option Deno does not " +
    "offer; bind the interface's address with -s (server) or -b (local) instead",
  "--mptcp": "Deno cannot open Multipath TCP sockets",
  "-T": "transparent proxying (ss-redir) is not a role of ssdeno",
  "-D": "ss-manager's working directory: ssdeno's server runs managed listeners itself",
  "--executable": "ss-manager's ss-server path: ssdeno's server runs managed listeners itself",
};

/** node:util's messages mention positionals and `--`; ours name the flag and stop there. */
function translateParseError(error: unknown): unknown {
  if (!(error instanceof Error) || !("code" in error)) return error;
  const quoted = /'([^']+)'/.exec(error.message)?.[1] ?? "";
  const flag = quoted.replace(/ <value>$/, "").replace(", ", "/");
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const reason = UNSUPPORTED_LIBEV_FLAGS[flag];
    if (reason !== undefined) return new ConfigError(`Flag ${flag} is not supported: ${reason}`);
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
  if (config.prefix !== undefined) flags["prefix"] = String.fromCharCode(...config.prefix);
  return flags;
}

/** A flag's parsed value under its setting's type; `undefined` when the flag is absent. */
function flagValue(setting: Setting, raw: unknown, flag: string): unknown {
  if (raw === undefined) return undefined;
  switch (setting.value) {
    case "strings": {
      const list = raw as string[];
      return list.length === 1 ? list[0] : list;
    }
    case "port":
      return port(raw as string, flag);
    case "seconds":
      return seconds(raw as string, flag);
    case "integer":
      return integer(raw as string, flag);
    case "uri-text":
      // As the URI's query value reads: %XX escapes and + for a space (one char per byte).
      return new URLSearchParams(`v=${(raw as string).replaceAll("&", "%26")}`).get("v");
    default:
      return raw;
  }
}

function port(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : -1;
  if (value < 0 || value > 65535) {
    throw new ConfigError(`Invalid ${flag} "${text}": expected an integer from 0 to 65535`);
  }
  return value;
}

function integer(text: string, flag: string): number {
  if (!/^[0-9]{1,15}$/.test(text)) {
    throw new ConfigError(`Invalid ${flag} "${text}": expected a whole number`);
  }
  return Number(text);
}

function seconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) {
    throw new ConfigError(`Invalid ${flag} "${text}": expected a number of seconds`);
  }
  return Number(text);
}
