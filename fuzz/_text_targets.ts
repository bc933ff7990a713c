/**
 * Targets for the text formats users and providers hand us: `ss://` URIs (SIP002), JSON config
 * files and SIP008 documents, ss-manager commands, ACL files, `host:port` and Outline prefixes.
 * Inputs are bytes decoded as our readers decode them (UTF-8, invalid bytes as U+FFFD), so a
 * byte-level mutation can also break the encoding.
 * @module
 */
import {
  buildLocalConfig,
  buildServerConfigs,
  parseConfigText,
  type RawConfig,
  sip008Servers,
} from "../config/load.ts";
import { AclError, parseAcl } from "../protocol/acl.ts";
import { ConfigError } from "../protocol/errors.ts";
import { parseHostPort } from "../protocol/host_port.ts";
import { ManagerError, parseManagerCommand } from "../protocol/manager.ts";
import { managedServerConfig } from "../config/load.ts";
import { checkPrefix, prefixFromCodePoints, prefixToUriValue } from "../protocol/outline_prefix.ts";
import { decodeSip002, encodeSip002, type Sip002Config } from "../protocol/sip002.ts";
import { bytesOf, counting, psk, textOf, UTF8_EDGES } from "./_fixtures.ts";
import { type FuzzTarget, invariant } from "./target.ts";
import { ACCEPTED_KEYS } from "../config/schema.ts";

const PSK16 = psk(16, 1);
const PSK32 = psk(32, 2);
const METHODS = ["aes-128-gcm", "chacha20-ietf-poly1305", "2022-blake3-aes-128-gcm", "none"];

const SIP002_CONFIGS: readonly Sip002Config[] = [
  { method: "aes-128-gcm", password: "test", host: "192.168.100.1", port: 8888, tag: "Example1" },
  {
    method: "chacha20-ietf-poly1305",
    password: "p@ss:w/o?rd#",
    host: "2001:db8::1",
    port: 443,
    plugin: "obfs-local",
    pluginOpts: "obfs=http;obfs-host=example.com",
    tag: "Ünïcode name",
  },
  {
    method: "2022-blake3-aes-128-gcm",
    password: `${PSK16}:${PSK16}`,
    host: "example.com",
    port: 1,
  },
  {
    method: "2022-blake3-aes-256-gcm",
    password: PSK32,
    host: "h",
    port: 65535,
    plugin: "v2ray-plugin",
  },
  {
    method: "aes-256-gcm",
    password: "x",
    host: "10.0.0.1",
    port: 8388,
    prefix: Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0xa8, 0x01, 0x01, 0xdc),
  },
];

const sip002: FuzzTarget = {
  name: "sip002",
  parser: "decodeSip002()",
  typed: [ConfigError],
  seeds: () => [
    ...SIP002_CONFIGS.map((config) => bytesOf(encodeSip002(config))),
    // The legacy form: base64 of the whole `method:password@host:port`, query inside or out.
    bytesOf(`ss://${btoa("aes-128-gcm:test@192.168.100.1:8888")}#legacy`),
    bytesOf(`ss://${btoa("chacha20-ietf-poly1305:pw@[::1]:8388/?outline=1")}`),
    bytesOf(`ss://${btoa("bf-cfb:test@192.168.100.1:8888")}/?plugin=x%3By&prefix=%16%03`),
  ],
  dictionary: [
    "ss://",
    "@",
    ":",
    "#",
    "?",
    "/",
    "/?",
    "&",
    "=",
    ";",
    "%",
    "%3D",
    "%3A",
    "%C3%9C",
    "%DC",
    "[",
    "]",
    "plugin=",
    "prefix=",
    "+",
    "-",
    "_",
    "2022-blake3-aes-256-gcm",
    "aes-128-gcm",
  ],
  maxLength: 2048,
  run: (input) => decodeSip002(textOf(input)),
};

/** What a local's `-c` file holds, from a bare server to lists of servers and plugins. */
const LOCAL_FILES: readonly RawConfig[] = [
  { server: "203.0.113.1", server_port: 8388, password: "pw", method: "aes-256-gcm" },
  {
    server: ["0.0.0.0", "[::]"],
    server_port: 8388,
    local_address: "127.0.0.1",
    local_port: 1080,
    password: "barfoo!",
    method: "chacha20-ietf-poly1305",
    timeout: 300,
    mode: "tcp_and_udp",
    fast_open: false,
    plugin: "obfs-local",
    plugin_opts: "obfs=http",
    nameserver: "8.8.8.8",
  },
  {
    servers: [
      { address: "a.example", port: 1, password: PSK16, method: "2022-blake3-aes-128-gcm" },
      { server: "b.example", server_port: 2, password: "p", method: "aes-128-gcm", disabled: true },
      {
        server: "::1",
        server_port: 3,
        password: "q",
        method: "aes-256-gcm",
        prefix: "\u0016\u0003",
      },
    ],
    local_port: 0,
    protocol: "socks",
    balancer: { check_interval: 10, check_target: "example.com:80" },
  },
  {
    server: "198.51.100.1:8390",
    password: "pw",
    local_users: [{ user_name: "u", password: "p" }],
    online_config: { config_url: "https://example.com/sip008.json", update_interval: 60 },
    locals: [{ local_address: "::1", local_port: 1081, protocol: "http" }],
    udp_prefix: "\u00dc",
    nofile: 4096,
  },
];

/** What a server's `-c` file holds: listeners, users, port lists, the manager and metrics. */
const SERVER_FILES: readonly RawConfig[] = [
  LOCAL_FILES[0]!,
  LOCAL_FILES[1]!,
  {
    server: "0.0.0.0",
    server_port: 8389,
    method: "2022-blake3-aes-256-gcm",
    password: PSK32,
    users: [{ name: "alice", password: psk(32, 7) }, { name: "bob", password: psk(32, 8) }],
    forbidden_ip: "10.0.0.0/8, ::1",
    manager_address: "127.0.0.1:6001",
    metrics: "127.0.0.1:9090",
  },
  {
    port_password: { "8381": "a", "8382": "b" },
    method: "aes-128-gcm",
    servers: [{ server: "::", server_port: 8383, password: "c", method: "none", mode: "udp_only" }],
    nofile: 4096,
    workers: 2,
  },
];

const CONFIG_DICTIONARY = [
  ...[...ACCEPTED_KEYS].map((key) => `"${key}"`),
  ...METHODS.map((name) => `"${name}"`),
  "{",
  "}",
  "[",
  "]",
  ":",
  ",",
  "null",
  "true",
  "false",
  '""',
  "//",
  "/*",
  "*/",
  "\\u0000",
  "\\ud800",
  ...UTF8_EDGES,
];

/** The config file's text, parsed; `acl` names a file to read, which is no parsing: dropped. */
function configOf(input: Uint8Array): RawConfig {
  const raw = parseConfigText(textOf(input), "fuzz.json");
  delete raw["acl"];
  return raw;
}

const configLocal: FuzzTarget = {
  name: "config-local",
  parser: "parseConfigText(), buildLocalConfig()",
  typed: [ConfigError],
  seeds: () => LOCAL_FILES.map((file) => bytesOf(JSON.stringify(file, null, 1))),
  dictionary: CONFIG_DICTIONARY,
  maxLength: 4096,
  run: (input) => buildLocalConfig(configOf(input)),
};

const configServer: FuzzTarget = {
  name: "config-server",
  parser: "parseConfigText(), buildServerConfigs()",
  typed: [ConfigError],
  seeds: () => SERVER_FILES.map((file) => bytesOf(JSON.stringify(file))),
  dictionary: CONFIG_DICTIONARY,
  maxLength: 4096,
  run: (input) => buildServerConfigs(configOf(input)),
};

const SIP008_DOCUMENTS: readonly RawConfig[] = [
  {
    version: 1,
    servers: [
      {
        id: "27b8a625-4f4b-4428-9f0f-8a2317db7c79",
        remarks: "Name of the server",
        server: "example.com",
        server_port: 8388,
        password: "example",
        method: "chacha20-ietf-poly1305",
        plugin: "xxx",
        plugin_opts: "xxxxx",
      },
      {
        server: "2001:db8::2",
        server_port: 443,
        password: PSK16,
        method: "2022-blake3-aes-128-gcm",
      },
    ],
    bytes_used: 274877906944,
    bytes_remaining: 824633720832,
  },
  {
    version: 1,
    servers: [{
      address: "10.1.1.1",
      port: 1,
      password: "p",
      method: "aes-256-gcm",
      prefix: "POST ",
    }],
  },
];

const sip008: FuzzTarget = {
  name: "sip008",
  parser: "parseConfigText(), sip008Servers()",
  typed: [ConfigError],
  seeds: () => SIP008_DOCUMENTS.map((doc) => bytesOf(JSON.stringify(doc))),
  dictionary: CONFIG_DICTIONARY,
  maxLength: 4096,
  run: (input) => sip008Servers(parseConfigText(textOf(input), "sip008.json")),
};

/** The server settings an ss-manager `add` is laid over (main.ts passes the file's). */
const MANAGER_BASE: RawConfig = { server: "127.0.0.1", method: "aes-256-gcm", timeout: 60 };

const manager: FuzzTarget = {
  name: "manager",
  parser: "parseManagerCommand(), managedServerConfig()",
  typed: [ManagerError, ConfigError],
  seeds: () =>
    [
      "ping",
      "list",
      'add: {"server_port": 8001, "password":"7cd308cc059"}',
      'add: {"server_port": "8002", "password": "pw", "method": "chacha20-ietf-poly1305", ' +
      '"mode": "tcp_only", "no_delay": true, "plugin": "obfs-server", "plugin_opts": "obfs=http"}',
      `add: {"server_port": 8003, "password": "${PSK32}", "method": "2022-blake3-aes-256-gcm", ` +
      `"users": [{"name": "a", "password": "${psk(32, 5)}"}]}`,
      'remove: {"server_port": 8001}',
    ].map(bytesOf),
  dictionary: [
    "add:",
    "remove:",
    "ping",
    "list",
    ...CONFIG_DICTIONARY,
    '"plugin_mode"',
    '"fast_open"',
  ],
  maxLength: 5000,
  run(input) {
    const command = parseManagerCommand(textOf(input));
    if (command.command !== "add") return command;
    return managedServerConfig(MANAGER_BASE, {}, { ...command.request });
  },
};

const ACL_FILES = [
  "[proxy_all]\n[bypass_list]\n0.0.0.0/8\n10.0.0.0/8\n127.0.0.0/8\n::1/128\nfc00::/7\n" +
  "(^|\\.)example\\.com$\n^exact\\.example$\n|plain.example\n||tree.example\n",
  "[bypass_all]\n[proxy_list]\n1.0.1.0/24\n2000::/8\n(?:^|\\.)4tern\\.com$\n# comment\n",
  "[reject_all]\n[white_list]\n192.168.0.0/16\n[outbound_block_list]\n^.*\\.ads\\.example$\n" +
  "[outbound_allow_all]\n[outbound_block_all]\n[outbound_allow_list]\n.*\\.good\\.\n",
  "\ufeff[accept_all]\r\n[black_list]\r\n10.9.0.32/16\r\n::ffff:1.2.3.4\r\n[a-z]+\\d\r\n  \r\n",
];

const acl: FuzzTarget = {
  name: "acl",
  parser: "parseAcl()",
  typed: [AclError],
  seeds: () => ACL_FILES.map(bytesOf),
  dictionary: [
    "\n",
    "[proxy_all]",
    "[bypass_all]",
    "[bypass_list]",
    "[proxy_list]",
    "[outbound_block_list]",
    "[outbound_allow_list]",
    "(^|\\.)",
    "(?:^|\\.)",
    "^.*\\.",
    "\\.",
    "$",
    "^",
    "|",
    "||",
    "/",
    "/128",
    "/0",
    "::",
    "(",
    ")",
    "[",
    "]",
    "*",
    "+",
    "?",
    "{2,}",
    "\\",
    "#",
  ],
  maxLength: 4096,
  run: (input) => parseAcl(input),
};

const hostPort: FuzzTarget = {
  name: "host-port",
  parser: "parseHostPort()",
  typed: [RangeError], // documented: every bad `host:port` is a RangeError naming the text
  seeds: () =>
    ["example.com:53", "1.1.1.1:53", "[2606:4700::1111]:53", "[::ffff:1.2.3.4]:65535", "a:1"].map(
      bytesOf,
    ),
  dictionary: ["[", "]", ":", "::", ".", "0", "65535"],
  maxLength: 512,
  run: (input) => parseHostPort(textOf(input)),
};

/**
 * Prefix text as a URI or config carries it, then the salt check for a 32-byte salt. Also
 * checks that `prefixToUriValue` reads back as the same bytes.
 */
const outlinePrefix: FuzzTarget = {
  name: "outline-prefix",
  parser: "prefixFromCodePoints(), checkPrefix(), prefixToUriValue()",
  typed: [ConfigError],
  seeds: () =>
    [
      "\u0016\u0003\u0001\u0000\u00a8\u0001\u0001",
      "POST ",
      "HTTP/1.1 ",
      String.fromCharCode(...counting(20, 0xec)),
    ].map(bytesOf),
  maxLength: 256,
  run(input) {
    const bytes = prefixFromCodePoints(textOf(input), "fuzz prefix");
    const value = new URLSearchParams(`prefix=${prefixToUriValue(bytes)}`).get("prefix")!;
    const back = prefixFromCodePoints(value, "fuzz prefix");
    invariant(
      back.length === bytes.length && back.every((byte, i) => byte === bytes[i]),
      "prefixToUriValue() does not read back as the same bytes",
    );
    return checkPrefix(bytes, 32, "fuzz prefix");
  },
};

/** The text targets, in report order. */
export const TEXT_TARGETS: readonly FuzzTarget[] = [
  sip002,
  configLocal,
  configServer,
  sip008,
  manager,
  acl,
  hostPort,
  outlinePrefix,
];
