import assert from "node:assert/strict";
import { type CliCommand, parseCli, parseCommandLine, USAGE, VERSION } from "../../config/cli.ts";
import { buildServerConfigs } from "../../config/load.ts";
import { assertConfigError } from "./_assert.ts";

/** The parsed command of `args`, which must be a run command (not help or version). */
function run(args: string[]): Extract<CliCommand, { flags: unknown }> {
  const command = parseCommandLine(args);
  assert.ok("flags" in command, `expected a run command, got ${command.name}`);
  return command;
}

Deno.test("parseCommandLine() recognises each command", () => {
  for (const name of ["server", "local", "tunnel", "url", "genkey"]) {
    assert.deepStrictEqual(run([name]), { name, flags: {}, logLevel: "info" });
  }
});

Deno.test("parseCommandLine() turns libev's short flags into config-file keys", () => {
  const command = run([
    "local",
    "-c",
    "ss.json",
    "-s",
    "ss.example",
    "-p",
    "8443",
    "-b",
    "::1",
    "-l",
    "1081",
    "-k",
    "pw",
    "-m",
    "aes-128-gcm",
    "-t",
    "60",
    "-u",
  ]);
  assert.deepStrictEqual(command, {
    name: "local",
    configPath: "ss.json",
    logLevel: "info",
    flags: {
      server: "ss.example",
      server_port: 8443,
      local_address: "::1",
      local_port: 1081,
      password: "pw",
      method: "aes-128-gcm",
      timeout: 60,
      mode: "tcp_and_udp",
    },
  });
});

Deno.test("parseCommandLine() reads the long flags too", () => {
  const command = run([
    "server",
    "--config=ss.json",
    "--server",
    "::",
    "--server-port",
    "0",
    "--password",
    "pw",
    "--method",
    "none",
    "--timeout",
    "1.5",
    "--handshake-timeout",
    "3",
    "--plugin",
    "obfs-server",
    "--plugin-opts",
    "obfs=http",
    "--allow-private-targets",
    "--no-delay",
    "--ipv6-first",
    "-U",
  ]);
  assert.deepStrictEqual(command.flags, {
    server: "::",
    server_port: 0,
    password: "pw",
    method: "none",
    timeout: 1.5,
    handshake_timeout: 3,
    mode: "udp_only",
    plugin: "obfs-server",
    plugin_opts: "obfs=http",
    allow_private_targets: true,
    no_delay: true,
    ipv6_first: true,
  });
  assert.equal(command.configPath, "ss.json");
});

Deno.test("parseCommandLine() collects a repeated -s into a list", () => {
  assert.deepStrictEqual(run(["server", "-s", "0.0.0.0", "-s", "::"]).flags, {
    server: ["0.0.0.0", "::"],
  });
});

Deno.test("parseCommandLine() maps -v, -vv and -q to log levels", () => {
  assert.equal(run(["server"]).logLevel, "info");
  assert.equal(run(["server", "-v"]).logLevel, "debug");
  assert.equal(run(["server", "-vv"]).logLevel, "trace");
  assert.equal(run(["server", "-v", "--verbose", "-v"]).logLevel, "trace");
  assert.equal(run(["server", "--quiet"]).logLevel, "warn");
});

Deno.test("parseCommandLine() takes method, password, host and port from --url", () => {
  const url = "ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp";
  assert.deepStrictEqual(run(["local", "--url", url]).flags, {
    server: "192.168.100.1",
    server_port: 8888,
    method: "aes-128-gcm",
    password: "test",
    plugin: "obfs-local",
    plugin_opts: "obfs=http",
  });
});

Deno.test("parseCommandLine() lets individual flags override the --url fields", () => {
  const url = "ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888";
  assert.deepStrictEqual(run(["local", "-p", "9", "--url", url, "-k", "other"]).flags, {
    server: "192.168.100.1",
    server_port: 9,
    method: "aes-128-gcm",
    password: "other",
  });
});

Deno.test("parseCommandLine() answers --help and --version before anything else", () => {
  assert.deepStrictEqual(parseCommandLine(["--help"]), { name: "help" });
  assert.deepStrictEqual(parseCommandLine(["server", "-h", "-p", "x"]), { name: "help" });
  assert.deepStrictEqual(parseCommandLine(["--version"]), { name: "version" });
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  for (const flag of ["--config", "--server-port", "--url", "--allow-private-targets", "-U"]) {
    assert.ok(USAGE.includes(flag), flag);
  }
});

Deno.test("parseCommandLine() throws ConfigError naming what is wrong", async (t) => {
  const cases: [string[], string][] = [
    [[], "Missing command: expected one of server, local, tunnel, url, genkey"],
    [["serve"], `Unknown command "serve": expected one of server, local, tunnel, url, genkey`],
    [["server", "extra"], `Unexpected argument "extra"`],
    [["server", "--foo"], `Unknown flag "--foo"`],
    [["server", "-x"], `Unknown flag "-x"`],
    [["server", "-p"], "Missing value for flag -p/--server-port"],
    [["server", "--no-delay=false"], "Flag --no-delay does not take a value"],
    [["server", "-p", "http"], `Invalid -p/--server-port "http": expected an integer`],
    [["server", "-p", "65536"], `Invalid -p/--server-port "65536"`],
    [["local", "--local-port=-5"], `Invalid -l/--local-port "-5"`],
    [["local", "-l", "-5"], `Missing value for flag -l: write a value that starts with "-" as`],
    [["server", "-t", "5m"], `Invalid -t/--timeout "5m": expected a number of seconds`],
    [["server", "--handshake-timeout", "x"], `Invalid --handshake-timeout "x"`],
    [["server", "-u", "-U"], "Conflicting flags -u and -U"],
    [["server", "-q", "-v"], "Conflicting flags -q and -v"],
    [["local", "--url", "http://x"], `"ss://"`],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      await assertConfigError(() => parseCommandLine(args), message);
    });
  }
});

Deno.test("parseCli() reads the -c file, and its flags then override the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ss.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ server_port: 8388, password: "file", method: "aes-128-gcm" }),
    );
    const command = await parseCli(["server", "-c", path, "-m", "aes-256-gcm"]);
    assert.ok("flags" in command);
    assert.deepStrictEqual(command.file, {
      server_port: 8388,
      password: "file",
      method: "aes-128-gcm",
    });
    const [config] = buildServerConfigs(command.file ?? {}, command.flags).configs;
    assert.deepStrictEqual([config!.port, config!.password, config!.method], [
      8388,
      "file",
      "aes-256-gcm",
    ]);
    await assertConfigError(
      () => parseCli(["server", "-c", `${dir}/nope.json`]),
      `Cannot read config file "${dir}/nope.json"`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseCommandLine() maps -L to tunnel_address", () => {
  const command = run(["tunnel", "-L", "1.1.1.1:53", "-u"]);
  assert.ok("flags" in command);
  assert.deepStrictEqual(command.flags, { tunnel_address: "1.1.1.1:53", mode: "tcp_and_udp" });
});
