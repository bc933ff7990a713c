/**
 * SIP002 `ss://` URI codec: the text users paste and scan as QR codes to share a server.
 *
 * ```
 * ss://<userinfo>@<host>[:<port>][/][?plugin=<name>[;<opts>]][&prefix=<bytes>][#<tag>]
 * userinfo = base64url(method ":" password)     AEAD-2017, stream and none methods
 *          | pct(method) ":" pct(password)      required for 2022 methods (PSKs hold + / =)
 * legacy   = ss://base64(method ":" password "@" host ":" port[[/]?<query>])[[/]?<query>][#<tag>]
 * ```
 *
 * `prefix` is Outline's connection prefix (`outline_prefix.ts`): one character per byte.
 *
 * Pure string work: no I/O. The decoder is lenient in what it reads (padding, standard or url
 * alphabet, `%3D`, the legacy form) and the encoder writes the one canonical form.
 * @module
 */

import { ConfigError } from "./errors.ts";
import { prefixFromCodePoints, prefixToUriValue } from "./outline_prefix.ts";

/** The fields a `ss://` URI carries. */
export interface Sip002Config {
  method: string;
  password: string;
  /** Host name or IP literal; IPv6 without brackets. */
  host: string;
  port: number;
  /** SIP003 plugin name, e.g. `obfs-local`. */
  plugin?: string;
  /** SIP003 plugin options, kept as written (`obfs=http;obfs-host=example.com`). */
  pluginOpts?: string;
  /** Display name (the URI fragment). */
  tag?: string;
  /**
   * Outline connection prefix: the fixed first bytes of the client's salt. Never empty when
   * set. Its length is checked by the config layer, which knows the method's salt size.
   */
  prefix?: Uint8Array;
}

/** Port assumed when a URI has none (shadowsocks-rust does the same). */
export const SIP002_DEFAULT_PORT = 8388;

/**
 * Every method name the Shadowsocks ecosystem defines (NOTES §3), supported here or not. The
 * codec only rejects names no implementation knows, so a URI for a real but unsupported method
 * still decodes and the config layer can say that it is unsupported.
 */
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  "aes-128-gcm",
  "aes-192-gcm",
  "aes-256-gcm",
  "chacha20-ietf-poly1305",
  "xchacha20-ietf-poly1305",
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
  "2022-blake3-chacha8-poly1305",
  "2022-blake3-chacha12-poly1305",
  ...["128", "192", "256"].flatMap((bits) =>
    ["ctr", "cfb", "cfb8", "cfb1", "ofb"].map((mode) => `aes-${bits}-${mode}`)
  ),
  "camellia-128-cfb",
  "camellia-192-cfb",
  "camellia-256-cfb",
  "chacha20-ietf",
  "chacha20",
  "xchacha20",
  "salsa20",
  "bf-cfb",
  "cast5-cfb",
  "idea-cfb",
  "rc2-cfb",
  "des-cfb",
  "seed-cfb",
  "rc4",
  "rc4-md5",
  "table",
  "none",
  "plain",
]);

const SCHEME = "ss://";

/** Parses a `ss://` URI in SIP002 or legacy form. Throws `ConfigError` on any malformed part. */
export function decodeSip002(uri: string): Sip002Config {
  // Never quote the whole URI in errors: it carries the password.
  if (uri.slice(0, SCHEME.length).toLowerCase() !== SCHEME) {
    throw new ConfigError(`Invalid ss:// URI: expected it to start with "ss://"`);
  }
  const hashAt = uri.indexOf("#");
  const body = uri.slice(SCHEME.length, hashAt === -1 ? undefined : hashAt);
  const tag = hashAt === -1 ? "" : percentDecode(uri.slice(hashAt + 1), "tag");

  const queryAt = body.indexOf("?");
  const authority = queryAt === -1 ? body : body.slice(0, queryAt);
  const outerQuery = queryAt === -1 ? "" : body.slice(queryAt + 1);

  const atAt = authority.lastIndexOf("@");
  const { query: innerQuery, ...parts } = atAt === -1
    ? decodeLegacy(queryAt === -1 ? authority : stripLegacySlash(authority))
    : {
      ...decodeUserinfo(authority.slice(0, atAt)),
      ...parseHostPort(stripPath(authority.slice(atAt + 1))),
      query: "",
    };

  const config: Sip002Config = { ...parts };
  // A legacy URI may carry its query inside the base64 text (Outline writes it there); that
  // one comes first, so URLSearchParams.get() prefers it.
  const params = new URLSearchParams([innerQuery, outerQuery].filter(Boolean).join("&"));
  const pluginValue = params.get("plugin");
  if (pluginValue) {
    const semicolon = pluginValue.indexOf(";");
    const name = semicolon === -1 ? pluginValue : pluginValue.slice(0, semicolon);
    const opts = semicolon === -1 ? "" : pluginValue.slice(semicolon + 1);
    if (name) config.plugin = name;
    if (name && opts) config.pluginOpts = opts;
  }
  const prefixValue = params.get("prefix");
  if (prefixValue) config.prefix = prefixFromCodePoints(prefixValue, "ss:// URI prefix");
  if (tag) config.tag = tag;
  return config;
}

/**
 * Writes the canonical SIP002 form: base64url userinfo without padding, except percent-encoded
 * `method:password` for 2022 methods; `/?plugin=` only when a plugin is set, and `prefix=`
 * only when a prefix is.
 */
export function encodeSip002(config: Sip002Config): string {
  checkMethod(config.method);
  if (!config.host) throw new ConfigError(`Invalid host "": expected a host name or IP address`);
  checkPort(config.port, String(config.port));

  const userinfo = is2022(config.method)
    ? `${encodeURIComponent(config.method)}:${encodeURIComponent(config.password)}`
    : toBase64Url(`${config.method}:${config.password}`);
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  let uri = `${SCHEME}${userinfo}@${host}:${config.port}`;
  const query: string[] = [];
  if (config.plugin) {
    const value = config.pluginOpts ? `${config.plugin};${config.pluginOpts}` : config.plugin;
    query.push(`plugin=${encodeURIComponent(value)}`);
  }
  if (config.prefix?.length) query.push(`prefix=${prefixToUriValue(config.prefix)}`);
  if (query.length > 0) uri += `/?${query.join("&")}`;
  if (config.tag) uri += `#${encodeURIComponent(config.tag)}`;
  return uri;
}

type Credentials = Pick<Sip002Config, "method" | "password">;
type Endpoint = Pick<Sip002Config, "host" | "port">;

/** `method:password` in clear (percent-encoded) when it has a `:`, else base64 of it. */
function decodeUserinfo(userinfo: string): Credentials {
  const colon = userinfo.indexOf(":");
  if (colon !== -1) {
    return credentials(
      percentDecode(userinfo.slice(0, colon), "method"),
      percentDecode(userinfo.slice(colon + 1), "password"),
    );
  }
  const plain = fromBase64(percentDecode(userinfo, "user info"), "user info");
  return splitCredentials(plain);
}

/**
 * The pre-SIP002 form: base64 of `method:password@host:port`, the password unescaped, maybe
 * followed by `?query` or `/?query` (returned undecoded). The host ends at the last `@`, so a
 * password may hold `@`, `/` and `?`, but a query must percent-encode its `@`.
 */
function decodeLegacy(encoded: string): Credentials & Endpoint & { query: string } {
  const plain = fromBase64(percentDecode(encoded, "URI body"), "URI body");
  const atAt = plain.lastIndexOf("@");
  if (atAt === -1) {
    throw new ConfigError(`Invalid ss:// URI: expected "method:password@host:port" in it`);
  }
  const rest = plain.slice(atAt + 1);
  const queryAt = rest.indexOf("?");
  const hostPort = stripPath(queryAt === -1 ? rest : rest.slice(0, queryAt));
  return {
    ...splitCredentials(plain.slice(0, atAt)),
    ...parseHostPort(hostPort),
    query: queryAt === -1 ? "" : rest.slice(queryAt + 1),
  };
}

/**
 * Drops the `/` of a legacy `ss://<base64>/?query`. `/` is a base64 digit (63), but not the last
 * digit of a body that ends in a port or an ASCII host name: its low bits are never all ones.
 */
function stripLegacySlash(authority: string): string {
  return authority.endsWith("/") ? authority.slice(0, -1) : authority;
}

/** Splits at the first `:`: methods never contain one, passwords may. */
function splitCredentials(plain: string): Credentials {
  const colon = plain.indexOf(":");
  if (colon === -1) {
    throw new ConfigError(`Invalid ss:// URI: expected "method:password" in its user info`);
  }
  return credentials(plain.slice(0, colon), plain.slice(colon + 1));
}

function credentials(method: string, password: string): Credentials {
  checkMethod(method);
  return { method, password };
}

/** Drops the optional `/` between authority and query; any other path is a mistake. */
function stripPath(hostPath: string): string {
  const slash = hostPath.indexOf("/");
  if (slash === -1) return hostPath;
  if (slash !== hostPath.length - 1) {
    throw new ConfigError(
      `Invalid ss:// URI path "${hostPath.slice(slash)}": expected nothing or "/" after the port`,
    );
  }
  return hostPath.slice(0, slash);
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`; a missing port means 8388. */
function parseHostPort(text: string): Endpoint {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    const rest = close === -1 ? "" : text.slice(close + 1);
    if (close === -1 || (rest !== "" && !rest.startsWith(":"))) {
      throw new ConfigError(`Invalid host "${text}": expected "[IPv6 address]:port"`);
    }
    host = text.slice(1, close);
    portText = rest === "" ? undefined : rest.slice(1);
  } else {
    const colon = text.indexOf(":");
    if (colon !== text.lastIndexOf(":")) {
      throw new ConfigError(`Invalid host "${text}": IPv6 addresses must be in brackets`);
    }
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
  }
  if (!host) throw new ConfigError(`Invalid ss:// URI: expected a host after "@"`);
  if (portText === undefined) return { host, port: SIP002_DEFAULT_PORT };
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  checkPort(port, portText);
  return { host, port };
}

function checkPort(port: number, shown: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`Invalid port "${shown}": expected an integer from 1 to 65535`);
  }
}

function checkMethod(method: string): void {
  if (!KNOWN_METHODS.has(method.toLowerCase())) {
    throw new ConfigError(`Invalid method "${method}" in ss:// URI: not a Shadowsocks method`);
  }
}

function is2022(method: string): boolean {
  return method.toLowerCase().startsWith("2022-");
}

function percentDecode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch (error) {
    throw new ConfigError(`Invalid ss:// URI ${what}: bad percent-encoding`, { cause: error });
  }
}

/** Accepts both alphabets, with or without `=` padding; rejects anything else. */
function fromBase64(text: string, what: string): string {
  const normalized = text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]*$/.test(normalized) || normalized.length % 4 === 1) {
    throw new ConfigError(`Invalid ss:// URI ${what}: expected base64 of "method:password"`);
  }
  const binary = atob(normalized.padEnd(Math.ceil(normalized.length / 4) * 4, "="));
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ConfigError(`Invalid ss:// URI ${what}: base64 does not decode to UTF-8 text`, {
      cause: error,
    });
  }
}

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  const binary = Array.from(bytes, (byte) => String.fromCharCode(byte)).join("");
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
