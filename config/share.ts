/**
 * What `ssdeno url` and the zero-config first run print: one `ss://` URI and QR code per
 * listener, with the host clients should dial in place of a wildcard listen address.
 * @module
 */

import { encodeSip002 } from "../protocol/sip002.ts";
import { isKeyPassword } from "../crypto/kdf.ts";
import { ConfigError } from "./errors.ts";
import { isForbiddenIp } from "../protocol/target_policy.ts";
import { renderQr } from "./qr.ts";
import type { ServerConfig } from "./types.ts";

/** Options of {@linkcode shareText}. */
export interface ShareTextOptions {
  /** Host to put in URIs of wildcard listeners. Default: {@linkcode guessHostAddress}. */
  host?: string;
  /** Colour the QR codes (for terminals). Default true. */
  color?: boolean;
  /** The address clients dial (`public_host`), instead of the listen address or a guess. */
  publicHost?: string;
  /** Outline's connection prefix for clients (`ssdeno url --prefix`), carried in each URI. */
  prefix?: Uint8Array;
}

/** Server-side plugin names whose client side is another program. */
const CLIENT_PLUGIN: Record<string, string> = {
  "obfs-server": "obfs-local",
  "ss-v2ray-plugin": "v2ray-plugin",
};

/**
 * The plugin a client of `config` runs: the client program's name, and the options without
 * the server-only ones (v2ray-plugin's `server`, simple-obfs's `failover=`).
 */
export function clientPlugin(
  plugin: NonNullable<ServerConfig["plugin"]>,
): { plugin: string; pluginOpts?: string } {
  const base = plugin.name.split("/").pop()!;
  const name = CLIENT_PLUGIN[base] ?? base;
  const options = (plugin.options ?? "").split(";")
    .filter((option) => option !== "" && option !== "server" && !option.startsWith("failover="))
    .join(";");
  return options ? { plugin: name, pluginOpts: options } : { plugin: name };
}

/** The URI a client needs to reach `config` at `host` (the first user's, on a multi-user port). */
export function serverUri(config: ServerConfig, host: string, prefix?: Uint8Array): string {
  return serverUris(config, host, prefix)[0]!.uri;
}

/**
 * One URI per client of `config` at `host`: the port's own key, or on a multi-user port one per
 * user (2022: `iPSK:uPSK`; AEAD-2017: the user's password), named in the URI's `#tag`.
 */
export function serverUris(
  config: ServerConfig,
  host: string,
  prefix?: Uint8Array,
): { user?: string; uri: string }[] {
  if (isKeyPassword(config.password)) {
    throw new ConfigError(
      "This listener is configured with a key (--key), which ss:// URIs cannot carry: " +
        "clients need the same key in their own config",
    );
  }
  const uri = (password: string, tag?: string) =>
    encodeSip002({
      method: config.method,
      password,
      host,
      port: config.port,
      ...(config.plugin ? clientPlugin(config.plugin) : {}),
      ...(prefix ? { prefix } : {}),
      ...(tag === undefined ? {} : { tag }),
    });
  if (!config.users) return [{ uri: uri(config.password) }];
  const is2022 = config.method.startsWith("2022-");
  return config.users.map((user) => ({
    user: user.name,
    uri: uri(is2022 ? `${config.password}:${user.password}` : user.password, user.name),
  }));
}

/**
 * URIs and QR codes for every listener. A listener on `0.0.0.0`/`::` has no address a client
 * could use, so this machine's address stands in, with a note that it may need replacing.
 */
export async function shareText(
  configs: readonly ServerConfig[],
  options: ShareTextOptions = {},
): Promise<string> {
  const lines: string[] = [];
  let guessed: string | undefined;
  for (const config of configs) {
    let host = options.publicHost ?? config.address;
    if (isWildcard(host)) {
      guessed = options.host ?? guessHostAddress();
      host = guessed;
    }
    for (const { user, uri } of serverUris(config, host, options.prefix)) {
      if (user !== undefined) lines.push(`user "${user}":`);
      lines.push(uri, await renderQr(uri, { color: options.color ?? true }));
    }
  }
  if (guessed !== undefined) {
    lines.push(
      `The URI uses ${guessed}, an address of this machine: replace it with the server's ` +
        `public address if clients reach it by another one`,
    );
  }
  return lines.join("\n");
}

/**
 * A non-loopback IPv4 address of this machine (public ones first), else `127.0.0.1`. Needs
 * `--allow-sys=networkInterfaces`; without it this quietly falls back instead of prompting.
 */
export function guessHostAddress(): string {
  const permission = Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" });
  if (permission.state !== "granted") return "127.0.0.1";
  const candidates = Deno.networkInterfaces()
    .filter((net) => net.family === "IPv4")
    .map((net) => net.address)
    .filter((address) => !address.startsWith("127.") && !address.startsWith("169.254."));
  return candidates.find((address) => !isForbiddenIp(address)) ?? candidates[0] ?? "127.0.0.1";
}

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::" || address === "";
}
