import assert from "node:assert/strict";
import { METHOD_NAMES } from "../../crypto/methods.ts";
import {
  buildLocalConfig,
  buildServerConfigs,
  buildTunnelConfig,
  parseConfigText,
  type RawConfig,
  readConfigFile,
  resolveMethod,
} from "../../config/load.ts";
import type { ServerConfig } from "../../config/types.ts";
import { assertConfigError } from "./_assert.ts";

const PASSWORD = "correct horse";

function servers(file: RawConfig, flags?: RawConfig): ServerConfig[] {
  return buildServerConfigs(file, flags).configs;
}

function listeners(file: RawConfig, flags?: RawConfig): string[] {
  return servers(file, flags).map((c) => `${c.address} ${c.port} ${c.password} ${c.method}`);
}

Deno.test("parseConfigText() reports the file name, line and column of a JSON syntax error", async (t) => {
  const cases: [string, string, string][] = [
    ["a trailing comma", '{\n  "server": "::",\n}', "line 3, column 1"],
    ["a missing comma", '{\n  "server": "::"\n  "server_port": 1\n}', "line 3, column 3"],
    ["a bad literal (V8 gives no position)", '{"a": tru}', "line 1, column 10"],
    ["a cut-off file", '{"server_port": 8388,\n', "line 2, column 1"],
    ["an empty file", "", "line 1, column 1"],
    ["a single-quoted string", "{\n\n    'server': 1}", "line 3, column 5"],
  ];
  for (const [name, text, where] of cases) {
    await t.step(name, async () => {
      await assertConfigError(
        () => parseConfigText(text, "conf/ss.json"),
        `Invalid JSON in config file "conf/ss.json" at ${where}: `,
      );
    });
  }
});

Deno.test("parseConfigText() keeps the file's text, which may hold the password, out of errors", async () => {
  const error = await assertConfigError(() =>
    parseConfigText('{"password": "hunter2" "method": x}', "a.json")
  );
  assert.equal(error.message.includes("hunter2"), false);
  const literal = await assertConfigError(() => parseConfigText('{"password": hunter2}', "a.json"));
  assert.equal(literal.message.includes("hunter2"), false);
});

Deno.test("parseConfigText() accepts a byte order mark and rejects a non-object document", async () => {
  assert.deepStrictEqual(parseConfigText('\uFEFF{"server_port": 1}', "a.json"), {
    server_port: 1,
  });
  await assertConfigError(() => parseConfigText("[1]", "a.json"), `"a.json"`, "a JSON object");
  await assertConfigError(() => parseConfigText("null", "a.json"), "a JSON object", "null");
});

Deno.test("readConfigFile() names the path and the OS reason when the file cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/missing.json`;
    const error = await assertConfigError(
      () => readConfigFile(missing),
      `Cannot read config file "${missing}": `,
      "No such file or directory",
    );
    assert.equal(error.message.includes("readfile"), false);
    await assertConfigError(() => readConfigFile(dir), `"${dir}"`, "directory");

    const good = `${dir}/good.json`;
    await Deno.writeTextFile(good, '{"server_port": 8388}');
    assert.deepStrictEqual(await readConfigFile(good), { server_port: 8388 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildServerConfigs() lists every valid method when the method is unknown", async () => {
  const error = await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, method: "aes-257-gcm" }),
    `Invalid method "aes-257-gcm": expected one of `,
  );
  for (const name of METHOD_NAMES) assert.ok(error.message.includes(name), name);
  await assertConfigError(
    () => buildLocalConfig({ server: "h", password: PASSWORD, method: "rc4-md5" }),
    `Invalid method "rc4-md5": a legacy stream cipher, insecure`,
    "--allow-insecure-ciphers",
  );
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, method: "aes-256-cfb" }),
    `Invalid method "aes-256-cfb": a legacy stream cipher`,
  );
  const allowed = buildServerConfigs({
    password: PASSWORD,
    method: "aes-256-cfb",
    allow_insecure_ciphers: true,
  });
  assert.equal(allowed.configs[0]!.method, "aes-256-cfb");
  assert.ok(allowed.warnings.some((w) => w.startsWith("Method aes-256-cfb is a legacy stream")));
  const local = buildLocalConfig(
    { server: "h", password: PASSWORD, method: "rc4-md5" },
    { allow_insecure_ciphers: true },
  );
  assert.equal(local.config.method, "rc4-md5");
  await assertConfigError(
    () => buildServerConfigs({ servers: [{ server_port: 1, password: "p", method: "x" }] }),
    `Invalid servers[0].method "x": expected one of `,
  );
});

Deno.test("resolveMethod() finds methods regardless of case and returns the canonical name", () => {
  assert.equal(resolveMethod("AES-128-GCM").name, "aes-128-gcm");
  assert.equal(servers({ password: "p", method: "AES-256-GCM" })[0]!.method, "aes-256-gcm");
});

Deno.test("buildServerConfigs() and buildLocalConfig() require a password unless the method is none", async () => {
  await assertConfigError(() => buildServerConfigs({}), "Missing password", "-k/--password");
  await assertConfigError(() => buildServerConfigs({ password: "" }), "Missing password");
  await assertConfigError(() => buildLocalConfig({ server: "h" }), "Missing password");
  await assertConfigError(
    () => buildServerConfigs({ servers: [{ server_port: 1 }] }),
    "Missing password for servers[0]",
  );
  await assertConfigError(
    () => buildServerConfigs({ port_password: { "8381": "" } }),
    `Missing password for port_password["8381"]`,
  );
  assert.equal(servers({ method: "none" })[0]!.password, "");
  assert.equal(servers({ method: "plain" })[0]!.method, "none");
});

Deno.test("buildServerConfigs() rejects ports outside 1-65535, naming the key and the value", async (t) => {
  const cases: [RawConfig, string][] = [
    [{ server_port: 70000 }, "Invalid server_port 70000: expected an integer from 0 to 65535"],
    [{ server_port: -1 }, "Invalid server_port -1"],
    [{ server_port: 1.5 }, "Invalid server_port 1.5"],
    [{ server_port: "8388" }, `Invalid server_port "8388": expected an integer`],
    [{ port_password: { "70000": "p" } }, `Invalid port_password key "70000"`],
    [{ port_password: { "0": "p" } }, `Invalid port_password key "0"`],
    [{ port_password: { "http": "p" } }, `Invalid port_password key "http"`],
    [{ server: "1.2.3.4:99999" }, `Invalid server "1.2.3.4:99999"`],
    [{ servers: [{ port: 65536 }] }, "Invalid servers[0].port 65536"],
  ];
  for (const [file, message] of cases) {
    await t.step(message, async () => {
      await assertConfigError(() => buildServerConfigs({ password: PASSWORD, ...file }), message);
    });
  }
});

Deno.test("buildLocalConfig() requires a real server port but lets the local port be 0", async () => {
  const base = { server: "h", password: PASSWORD };
  await assertConfigError(
    () => buildLocalConfig({ ...base, server_port: 0 }),
    "Invalid server_port 0: expected an integer from 1 to 65535",
  );
  await assertConfigError(
    () => buildLocalConfig({ ...base, local_port: 65536 }),
    "Invalid local_port 65536",
  );
  assert.equal(buildLocalConfig({ ...base, local_port: 0 }).config.localPort, 0);
  assert.equal(servers({ password: PASSWORD, server_port: 0 })[0]!.port, 0);
});

Deno.test("buildServerConfigs() names the key and the expected type of a wrongly typed value", async (t) => {
  const cases: [RawConfig, string][] = [
    [{ method: 5 }, "Invalid method 5: expected a string"],
    [{ timeout: "300" }, `Invalid timeout "300": expected a number of seconds`],
    [{ timeout: 0 }, "Invalid timeout 0: expected a number of seconds above 0"],
    [{ timeout: 1e10 }, "Invalid timeout 10000000000"],
    [{ handshake_timeout: -1 }, "Invalid handshake_timeout -1"],
    [{ udp_timeout: [] }, "Invalid udp_timeout (a list): expected a number of seconds"],
    [{ udp_max_associations: 1.5 }, "Invalid udp_max_associations 1.5: expected a positive"],
    [{ mode: "tcp" }, `Invalid mode "tcp": expected one of tcp_only, tcp_and_udp, udp_only`],
    [{ no_delay: "yes" }, `Invalid no_delay "yes": expected true or false`],
    [{ ipv6_first: 1 }, "Invalid ipv6_first 1: expected true or false"],
    [{ allow_private_targets: "true" }, `Invalid allow_private_targets "true"`],
    [{ server: 5 }, "Invalid server 5: expected a string or a list of strings"],
    [{ server: [] }, "Invalid server (a list): expected a string or a list"],
    [{ server: ["::", 1] }, "Invalid server (a list)"],
    [{ local_address: {} }, "Invalid local_address (an object): expected a string"],
    [{ local_port: true }, "Invalid local_port true: expected an integer"],
    [{ port_password: [] }, "Invalid port_password (a list): expected an object"],
    [{ port_password: { "8381": 1 } }, `Invalid port_password["8381"] (a number)`],
    [{ servers: {} }, "Invalid servers (an object): expected a list"],
    [{ servers: ["x"] }, `Invalid servers[0] "x": expected an object`],
    [{ servers: [{ server_port: 1, disabled: "no" }] }, `Invalid servers[0].disabled "no"`],
    [{ servers: [{ server_port: 1, mode: 1 }] }, "Invalid servers[0].mode 1"],
    [{ plugin: 1 }, "Invalid plugin 1: expected a string"],
    [{ fast_open: "yes" }, `Invalid fast_open "yes": expected true or false`],
    [{ workers: 0 }, "Invalid workers 0: expected an integer from 1 to 256"],
    [{ nameserver: 8 }, "Invalid nameserver 8"],
    [{ user: 0 }, "Invalid user 0: expected a string"],
    [{ verbose: "x" }, `Invalid verbose "x": expected true, false or a number`],
  ];
  for (const [file, message] of cases) {
    await t.step(message, async () => {
      await assertConfigError(() => buildServerConfigs({ password: PASSWORD, ...file }), message);
    });
  }
});

Deno.test("buildServerConfigs() shows only the type of a wrongly typed password", async () => {
  const error = await assertConfigError(
    () => buildServerConfigs({ password: 123456 }),
    "Invalid password (a number): expected a string",
  );
  assert.equal(error.message.includes("123456"), false);
});

Deno.test("buildServerConfigs() fills in the documented defaults", () => {
  assert.deepStrictEqual(buildServerConfigs({ password: PASSWORD }), {
    configs: [{
      method: "chacha20-ietf-poly1305",
      password: PASSWORD,
      timeout: 300,
      handshakeTimeout: 10,
      mode: "tcp_only",
      noDelay: true,
      udpTimeout: 300,
      udpMaxAssociations: 2048,
      gracePeriod: 30,
      allowPrivateTargets: false,
      ipv6First: false,
      address: "0.0.0.0",
      port: 8388,
    }],
    warnings: [],
    process: {},
  });
});

Deno.test("buildLocalConfig() fills in the documented defaults", () => {
  assert.deepStrictEqual(buildLocalConfig({ server: "ss.example", password: PASSWORD }), {
    config: {
      method: "chacha20-ietf-poly1305",
      password: PASSWORD,
      timeout: 300,
      handshakeTimeout: 10,
      mode: "tcp_only",
      noDelay: true,
      udpTimeout: 300,
      udpMaxAssociations: 2048,
      gracePeriod: 30,
      server: "ss.example",
      serverPort: 8388,
      localAddress: "127.0.0.1",
      localPort: 1080,
      servers: [{
        server: "ss.example",
        serverPort: 8388,
        method: "chacha20-ietf-poly1305",
        password: PASSWORD,
      }],
    },
    warnings: [],
    process: {},
  });
});

Deno.test("buildServerConfigs() reads every setting of a full libev-style file", () => {
  const [config] = servers({
    server: "::",
    server_port: 8443,
    password: PASSWORD,
    method: "aes-128-gcm",
    timeout: 60,
    handshake_timeout: 5,
    mode: "tcp_and_udp",
    no_delay: false,
    udp_timeout: 30,
    udp_max_associations: 16,
    allow_private_targets: true,
    ipv6_first: true,
    local_address: "127.0.0.1",
    local_port: 1080,
    grace_period: 12,
  });
  assert.deepStrictEqual(config, {
    method: "aes-128-gcm",
    password: PASSWORD,
    timeout: 60,
    handshakeTimeout: 5,
    mode: "tcp_and_udp",
    noDelay: false,
    udpTimeout: 30,
    udpMaxAssociations: 16,
    gracePeriod: 12,
    allowPrivateTargets: true,
    ipv6First: true,
    address: "::",
    port: 8443,
  });
});

Deno.test("buildServerConfigs() makes one listener per port_password entry and address", () => {
  const { configs, warnings } = buildServerConfigs({
    server: ["0.0.0.0", "::"],
    method: "aes-256-gcm",
    port_password: { "8381": "one", "8382": "two" },
    server_port: 8388,
    password: "ignored",
  });
  assert.deepStrictEqual(configs.map((c) => `${c.address} ${c.port} ${c.password} ${c.method}`), [
    "0.0.0.0 8381 one aes-256-gcm",
    ":: 8381 one aes-256-gcm",
    "0.0.0.0 8382 two aes-256-gcm",
    ":: 8382 two aes-256-gcm",
  ]);
  assert.deepStrictEqual(warnings, [
    "Ignoring server_port: port_password is set",
    "Ignoring password: port_password is set",
  ]);
});

Deno.test("buildServerConfigs() makes one listener per enabled servers[] item, inheriting the top level", () => {
  const configs = servers({
    method: "aes-128-gcm",
    password: "shared",
    timeout: 60,
    servers: [
      { server: "127.0.0.1", server_port: 1001 },
      { address: "::1", port: 1002, password: "own", method: "aes-256-gcm", mode: "udp_only" },
      { server: "127.0.0.1", server_port: 1003, disabled: true },
      { server: "[::]:1004", timeout: 5, disabled: false, remarks: "four" },
    ],
  });
  assert.deepStrictEqual(
    configs.map((c) => [c.address, c.port, c.password, c.method, c.mode, c.timeout]),
    [
      ["127.0.0.1", 1001, "shared", "aes-128-gcm", "tcp_only", 60],
      ["::1", 1002, "own", "aes-256-gcm", "udp_only", 60],
      ["::", 1004, "shared", "aes-128-gcm", "tcp_only", 5],
    ],
  );
});

Deno.test("buildServerConfigs() adds the top-level listener to servers[] only when server_port is set", () => {
  const list = [{ server: "127.0.0.1", server_port: 1001 }];
  assert.deepStrictEqual(listeners({ password: "p", servers: list }), [
    "127.0.0.1 1001 p chacha20-ietf-poly1305",
  ]);
  assert.deepStrictEqual(listeners({ password: "p", server_port: 1000, servers: list }), [
    "0.0.0.0 1000 p chacha20-ietf-poly1305",
    "127.0.0.1 1001 p chacha20-ietf-poly1305",
  ]);
});

Deno.test("buildServerConfigs() reads libev's host:port server items and bare IPv6 addresses", () => {
  assert.deepStrictEqual(
    listeners({ password: "p", server_port: 9, server: ["127.0.0.1:1001", "[::1]:1002", "::1"] }),
    [
      "127.0.0.1 1001 p chacha20-ietf-poly1305",
      "::1 1002 p chacha20-ietf-poly1305",
      "::1 9 p chacha20-ietf-poly1305",
    ],
  );
});

Deno.test("buildServerConfigs() rejects two listeners on the same address and port", async () => {
  await assertConfigError(
    () => buildServerConfigs({ password: "p", server: ["::", "::"] }),
    `Duplicate listener "::" port 8388`,
  );
  await assertConfigError(
    () => buildServerConfigs({ servers: [{ server_port: 0 }] }),
    "Missing password",
  );
  assert.equal(servers({ password: "p", server: ["::", "::"], server_port: 0 }).length, 2);
});

Deno.test("buildServerConfigs() needs at least one enabled listener", async () => {
  await assertConfigError(
    () => buildServerConfigs({ password: "p", servers: [{ server_port: 1, disabled: true }] }),
    "every entry is disabled",
  );
  await assertConfigError(
    () => buildServerConfigs({ password: "p", servers: [{ server: "h" }] }),
    "Missing servers[0].server_port",
  );
});

Deno.test("buildLocalConfig() balances over the top-level servers, else the enabled servers[] items", () => {
  const list = [
    { server: "a.example", server_port: 1, password: "a", disabled: true },
    { server: "b.example", server_port: 2, password: "b", method: "aes-128-gcm" },
    { server: "c.example", server_port: 3, password: "c" },
  ];
  const fromList = buildLocalConfig({ servers: list, local_port: 0 });
  assert.deepStrictEqual(
    [fromList.config.server, fromList.config.serverPort, fromList.config.password],
    ["b.example", 2, "b"],
  );
  assert.equal(fromList.config.method, "aes-128-gcm");
  assert.deepStrictEqual(fromList.warnings, []);
  assert.deepStrictEqual(
    fromList.config.servers?.map((s) => [s.server, s.serverPort, s.method, s.password]),
    [["b.example", 2, "aes-128-gcm", "b"], ["c.example", 3, "chacha20-ietf-poly1305", "c"]],
  );

  const top = buildLocalConfig({ server: ["[::1]:9", "x"], password: "t", servers: list });
  assert.deepStrictEqual([top.config.server, top.config.serverPort], ["::1", 9]);
  assert.deepStrictEqual(top.warnings, []);
  assert.deepStrictEqual(top.config.servers?.map((s) => [s.server, s.serverPort]), [
    ["::1", 9],
    ["x", 8388],
  ]);
});

Deno.test("buildLocalConfig() says how to give a server when there is none", async () => {
  await assertConfigError(
    () => buildLocalConfig({ password: "p" }),
    "Missing server",
    "-s/--server",
  );
});

Deno.test("flags override the file's keys", () => {
  const file = {
    server: "0.0.0.0",
    server_port: 8388,
    password: "file",
    method: "aes-128-gcm",
    timeout: 60,
  };
  const [config] = servers(file, { server_port: 9000, method: "aes-256-gcm", mode: "udp_only" });
  assert.deepStrictEqual(
    [config!.port, config!.password, config!.method, config!.mode, config!.timeout],
    [9000, "file", "aes-256-gcm", "udp_only", 60],
  );
  const local = buildLocalConfig({ ...file, server: "far.example", local_port: 1 }, {
    server: "near.example",
    local_port: 2,
    password: "flag",
  });
  assert.deepStrictEqual(
    [local.config.server, local.config.localPort, local.config.password],
    ["near.example", 2, "flag"],
  );
});

Deno.test("an endpoint given by flags replaces the file's port_password and servers lists", () => {
  const file = { method: "aes-128-gcm", port_password: { "8381": "a" }, servers: [] };
  const { configs, warnings } = buildServerConfigs(file, { server_port: 9000, password: "flag" });
  assert.deepStrictEqual(configs.map((c) => [c.port, c.password]), [[9000, "flag"]]);
  assert.deepStrictEqual(warnings, [
    "Ignoring port_password from the config file: the command line names the server",
    "Ignoring servers from the config file: the command line names the server",
  ]);
  assert.deepStrictEqual(
    servers(file, { method: "aes-256-gcm" }).map((c) => [c.port, c.method]),
    [[8381, "aes-256-gcm"]],
  );
});

Deno.test("buildServerConfigs() warns about unknown keys and settings it does not act on", () => {
  const { warnings, configs } = buildServerConfigs({
    password: "p",
    colour: "blue",
    plugin: "obfs-server",
    plugin_opts: "obfs=http",
    fast_open: true,
    reuse_port: false,
    workers: 4,
    user: "nobody",
    verbose: true,
    nameserver: "8.8.8.8",
    servers: [{ server_port: 1, weight: 2, plugin: "x" }],
    server_port: 2,
  });
  assert.deepStrictEqual(warnings, [
    `Ignoring unknown config key "colour"`,
    "Ignoring fast_open: Deno's sockets have no TCP Fast Open; connections open without it",
    "Ignoring verbose: use -v on the command line instead",
    `Ignoring unknown config key "servers[0].weight"`,
  ]);
  // `user` is acted on (the switch after binding), and so are plugins: the top-level one,
  // and each servers[] item's own.
  assert.deepStrictEqual(configs.map((c) => c.plugin), [
    { name: "obfs-server", options: "obfs=http" },
    { name: "x" },
  ]);
});

Deno.test("keys for the other role are accepted silently but still type-checked", async () => {
  const shared = { server: "h", password: "p", local_port: 1080, allow_private_targets: true };
  assert.deepStrictEqual(buildLocalConfig(shared).warnings, []);
  assert.deepStrictEqual(buildServerConfigs(shared).warnings, []);
  await assertConfigError(
    () => buildLocalConfig({ ...shared, allow_private_targets: "yes" }),
    `Invalid allow_private_targets "yes"`,
  );
  await assertConfigError(
    () => buildServerConfigs({ ...shared, local_port: "1080" }),
    `Invalid local_port "1080"`,
  );
});

Deno.test("null reads as an unset key, as shadowsocks-rust reads it", () => {
  assert.equal(servers({ password: "p", timeout: null, plugin: null })[0]!.timeout, 300);
});

Deno.test("buildTunnelConfig() takes the target from -L or tunnel_address", () => {
  const flags = {
    server: "203.0.113.5",
    password: PASSWORD,
    tunnel_address: "[2606:4700::1111]:53",
  };
  const { config } = buildTunnelConfig({ tunnel_address: "1.1.1.1:53" }, flags);
  assert.deepStrictEqual([config.tunnelHost, config.tunnelPort], ["2606:4700::1111", 53]);
  const fromFile = buildTunnelConfig({
    server: "203.0.113.5",
    password: PASSWORD,
    tunnel_address: "example.com:853",
  });
  assert.deepStrictEqual([fromFile.config.tunnelHost, fromFile.config.tunnelPort], [
    "example.com",
    853,
  ]);
  assert.deepStrictEqual(fromFile.warnings, []);
});

Deno.test("buildTunnelConfig() names a missing or malformed target", async () => {
  const base = { server: "203.0.113.5", password: PASSWORD };
  await assertConfigError(() => buildTunnelConfig(base), "Missing tunnel target", "-L host:port");
  await assertConfigError(
    () => buildTunnelConfig({ ...base, tunnel_address: "::1:53" }),
    "Invalid tunnel_address",
    "brackets",
  );
  await assertConfigError(
    () => buildTunnelConfig({ ...base, tunnel_address: "dns.example:0" }),
    "Invalid tunnel_address",
    "1 to 65535",
  );
});

const PSK16 = btoa(String.fromCharCode(...new Uint8Array(16).fill(7)));
const PSK32 = btoa(String.fromCharCode(...new Uint8Array(32).fill(9)));

Deno.test("buildServerConfigs() reads users for a 2022 multi-user server", () => {
  const users = [{ name: "alice", password: PSK16 }, {
    name: "bob",
    password: PSK16.replace("B", "C"),
  }];
  const [config] = servers({
    server_port: 8388,
    method: "2022-blake3-aes-128-gcm",
    password: PSK16,
    users,
  });
  assert.deepStrictEqual(config?.users, users);
  const [item] = servers({
    servers: [{ server_port: 9000, method: "2022-blake3-aes-128-gcm", password: PSK16, users }],
  });
  assert.deepStrictEqual(item?.users, users);
});

Deno.test("buildServerConfigs() reads a user's expires: a date, a date-time or Unix seconds", async () => {
  const base = { server_port: 8388, method: "2022-blake3-aes-128-gcm", password: PSK16 };
  const expiry = (expires: unknown) =>
    servers({ ...base, users: [{ name: "a", password: PSK16, expires }] })[0]!.users![0]!.expiresAt;
  assert.equal(expiry("2027-01-31"), Date.UTC(2027, 0, 31));
  assert.equal(expiry("2027-01-31T12:30:00+02:00"), Date.UTC(2027, 0, 31, 10, 30));
  assert.equal(expiry("2027-01-31T12:30:00Z"), Date.UTC(2027, 0, 31, 12, 30));
  assert.equal(expiry(1800000000), 1800000000 * 1000);
  // No offset: whose midnight would it be? Refused rather than guessed.
  await assertConfigError(() => expiry("2027-01-31T12:30:00"), "users[0].expires", "offset");
  await assertConfigError(() => expiry("next week"), "users[0].expires");
  await assertConfigError(() => expiry("2027-02-29"), "users[0].expires");
  await assertConfigError(() => expiry("2027-13-01T00:00:00Z"), "users[0].expires");
  assert.equal(expiry("2028-02-29"), Date.UTC(2028, 1, 29), "a leap year's day");
  await assertConfigError(() => expiry(1.5), "users[0].expires");
});

Deno.test("buildServerConfigs() reads max_client_ips per user and client_ip_window", async () => {
  const base = { server_port: 8388, method: "2022-blake3-aes-128-gcm", password: PSK16 };
  const built = buildServerConfigs({
    ...base,
    client_ip_window: 60,
    users: [{ name: "a", password: PSK16, max_client_ips: 2 }],
  });
  assert.equal(built.configs[0]!.users![0]!.maxClientIps, 2);
  assert.equal(built.process.clientIpWindowMs, 60_000);
  await assertConfigError(
    () => servers({ ...base, users: [{ name: "a", password: PSK16, max_client_ips: 0 }] }),
    "users[0].max_client_ips",
  );
  await assertConfigError(() => servers({ ...base, client_ip_window: 0 }), "client_ip_window");
});

Deno.test("buildServerConfigs() names bad users and bad 2022 keys without showing them", async () => {
  const base = { server_port: 8388, method: "2022-blake3-aes-256-gcm", password: PSK32 };
  await assertConfigError(() => servers({ ...base, users: [] }), "Invalid users", "empty");
  await assertConfigError(
    () =>
      servers({ ...base, users: [{ name: "a", password: PSK32 }, { name: "a", password: PSK32 }] }),
    'users[1].name "a"',
  );
  await assertConfigError(
    () => servers({ ...base, users: [{ name: "a", password: 5 }] }),
    "users[0].password",
  );
  const short = await assertConfigError(
    () => servers({ ...base, password: PSK16 }),
    "expected 32 bytes of base64, got 16",
  );
  assert.ok(!short.message.includes(PSK16));
  await assertConfigError(
    () => servers({ ...base, method: "none", users: [{ name: "a", password: PSK32 }] }),
    "multi-user needs an AEAD method",
  );
  const many = Array.from({ length: 101 }, (_, i) => ({ name: `u${i}`, password: "p" }));
  await assertConfigError(
    () => servers({ ...base, method: "aes-256-gcm", users: many }),
    "at most 100",
  );
});

Deno.test("buildLocalConfig() accepts an iPSK:uPSK chain and names the bad part", async () => {
  const flags = { server: "203.0.113.5", method: "2022-blake3-aes-128-gcm" };
  const { config } = buildLocalConfig({}, { ...flags, password: `${PSK16}:${PSK16}` });
  assert.equal(config.password, `${PSK16}:${PSK16}`);
  await assertConfigError(
    () => buildLocalConfig({}, { ...flags, password: `${PSK16}:nope` }),
    "part 2 of 2",
  );
});

Deno.test("the Python original's keys: pid-file is pid_file, log-file is a warning, OTA an error", async () => {
  const { process, warnings } = buildServerConfigs({
    password: PASSWORD,
    "pid-file": "/run/ss.pid",
    "log-file": "/var/log/ss.log",
    one_time_auth: false,
  });
  assert.equal(process.pidFile, "/run/ss.pid");
  assert.deepEqual(warnings, [
    "Ignoring log-file: ssdeno logs to stderr (systemd's journal keeps it)",
  ]);
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, one_time_auth: true }),
    "Invalid one_time_auth: one-time auth (OTA) was withdrawn",
  );
});

Deno.test("fleet: redis_url with defaults for prefix, node and strict", () => {
  const { fleet } = buildServerConfigs({
    password: PASSWORD,
    fleet: { redis_url: "redis://127.0.0.1:6379/0" },
  });
  assert.ok(fleet);
  assert.equal(fleet.url, "redis://127.0.0.1:6379/0");
  assert.equal(fleet.prefix, "ssdeno");
  assert.equal(fleet.strict, false);
  // No name given: main.ts names the node after the host (tests/service/fleet_node_test.ts).
  assert.equal(fleet.node, undefined);
  assert.equal(buildServerConfigs({ password: PASSWORD }).fleet, undefined);
});

Deno.test("fleet: every key given, rediss:// accepted", () => {
  const { fleet } = buildServerConfigs({
    password: PASSWORD,
    fleet: {
      redis_url: "rediss://user:pw@redis.example:6380/2",
      prefix: "eu:ss",
      node: "fra-1",
      strict: true,
      tls_ca: "/etc/ssdeno/redis-ca.pem",
    },
  });
  assert.deepEqual(fleet, {
    url: "rediss://user:pw@redis.example:6380/2",
    cluster: false,
    tlsCaFile: "/etc/ssdeno/redis-ca.pem",
    prefix: "eu:ss",
    node: "fra-1",
    strict: true,
  });
});

Deno.test("fleet: a Redis Cluster's seed nodes, with cluster: true", async () => {
  const seeds = ["redis://10.0.0.5:7000", "redis://10.0.0.6:7000"];
  const { fleet } = buildServerConfigs({
    password: PASSWORD,
    fleet: { redis_url: seeds, cluster: true },
  });
  assert.deepEqual(fleet?.url, seeds);
  assert.equal(fleet?.cluster, true);
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, fleet: { redis_url: seeds } }),
    "Invalid fleet.redis_url",
    "cluster: true",
  );
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, fleet: { redis_url: [] } }),
    "Invalid fleet.redis_url",
  );
});

Deno.test("fleet: a bad redis_url is refused without echoing it (it may hold a password)", async () => {
  const secret = "hunter2-secret";
  for (const url of [`http://u:${secret}@host:6379`, `redis://u:${secret}@host 6379`, 42]) {
    const error = await assertConfigError(
      () => buildServerConfigs({ password: PASSWORD, fleet: { redis_url: url } }),
      "Invalid fleet.redis_url",
    );
    assert.ok(!error.message.includes(secret), error.message);
    assert.ok(!error.message.includes("42"), error.message);
  }
});

Deno.test("fleet: missing redis_url, unknown keys and bad values are config errors", async () => {
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, fleet: {} }),
    "Invalid fleet: redis_url is required",
  );
  await assertConfigError(
    () => buildServerConfigs({ password: PASSWORD, fleet: "redis://127.0.0.1" }),
    "Invalid fleet",
    "an object",
  );
  await assertConfigError(
    () =>
      buildServerConfigs({
        password: PASSWORD,
        fleet: { redis_url: "redis://127.0.0.1", url: "redis://127.0.0.1" },
      }),
    'unknown key "url"',
  );
  await assertConfigError(
    () =>
      buildServerConfigs({
        password: PASSWORD,
        fleet: { redis_url: "redis://127.0.0.1", node: "has space" },
      }),
    "Invalid fleet.node",
  );
  await assertConfigError(
    () =>
      buildServerConfigs({
        password: PASSWORD,
        fleet: { redis_url: "redis://127.0.0.1", prefix: "" },
      }),
    "Invalid fleet.prefix",
  );
  await assertConfigError(
    () =>
      buildServerConfigs({
        password: PASSWORD,
        fleet: { redis_url: "redis://127.0.0.1", strict: "yes" },
      }),
    "Invalid fleet.strict",
  );
});
