import assert from "node:assert/strict";
import { parseCommandLine, USAGE } from "../../config/cli.ts";
import { buildLocalConfig } from "../../config/load.ts";
import { ACCEPTED_KEYS, SETTINGS } from "../../config/schema.ts";

Deno.test("every setting with a flag is in --help and turns into its config key", () => {
  for (const setting of SETTINGS) {
    if (setting.flag === undefined) continue;
    assert.ok(USAGE.includes(`--${setting.flag}`), `--${setting.flag} missing from --help`);
    const sample = setting.value === "true" ? [] : [
      setting.value === "port"
        ? "8080"
        : setting.value === "seconds"
        ? "7"
        : setting.value === "integer"
        ? "1500"
        : "x",
    ];
    const command = parseCommandLine(["local", `--${setting.flag}`, ...sample]);
    assert.ok("flags" in command);
    assert.notEqual(command.flags[setting.key], undefined, `--${setting.flag} → ${setting.key}`);
  }
});

Deno.test("every setting's key is accepted in a file without an unknown-key warning", () => {
  assert.equal(ACCEPTED_KEYS.size, SETTINGS.length, "keys are unique");
  const { warnings } = buildLocalConfig({ server: "h", password: "p", protocol: "http" });
  assert.deepEqual(warnings, []);
  const typo = buildLocalConfig({ server: "h", password: "p", protocoll: "http" });
  assert.deepEqual(typo.warnings, ['Ignoring unknown config key "protocoll"']);
});

Deno.test("--help lines stay within 100 columns", () => {
  for (const line of USAGE.split("\n")) assert.ok(line.length <= 100, line);
});

Deno.test("a shadowsocks-rust local config with locals, servers and protocol works unchanged", () => {
  const { config, warnings } = buildLocalConfig({
    locals: [{ local_address: "127.0.0.1", local_port: 1086, protocol: "http" }],
    servers: [
      { server: "a.example", server_port: 8388, method: "aes-256-gcm", password: "pa" },
      { server: "b.example", server_port: 8389, method: "aes-128-gcm", password: "pb" },
    ],
  });
  assert.deepEqual(warnings, []);
  assert.deepEqual([config.localAddress, config.localPort, config.protocol], [
    "127.0.0.1",
    1086,
    "http",
  ]);
  assert.equal(config.servers?.length, 2);
});
