import assert from "node:assert/strict";
import {
  buildLocalConfig,
  onlineConfigSpec,
  parseConfigText,
  sip008Servers,
} from "../../config/load.ts";
import { blankJsonComments } from "../../config/_json_comments.ts";
import { loadVectors } from "../_vectors.ts";
import { assertConfigError } from "./_assert.ts";

const PSK16 = "AAECAwQFBgcICQoLDA0ODw==";

Deno.test("the published SIP008 example (with // comments) parses into its two servers", async () => {
  const vector = await loadVectors("sip008_example.json");
  const doc = parseConfigText(vector.document_text, "sip008.json");
  const list = sip008Servers(doc);
  assert.equal(list.servers.length, 2);
  assert.deepEqual(list.servers[0], {
    server: "example.com",
    serverPort: 8388,
    method: "chacha20-ietf-poly1305",
    password: "example",
    plugin: { name: "xxx", options: "xxxxx" },
    remarks: "Name of the server",
  });
  assert.equal(list.bytesUsed, 274877906944);
  assert.equal(list.bytesRemaining, 824633720832);
  assert.deepEqual(list.warnings, []);
});

Deno.test("a SIP008 document with another version, or no usable server, is refused", async () => {
  await assertConfigError(() => sip008Servers({ servers: [] }), `"version" is missing`);
  await assertConfigError(() => sip008Servers({ version: "1", servers: [] }), `"version" is "1"`);
  await assertConfigError(() => sip008Servers({ version: 1, servers: [] }), "no usable server");
  await assertConfigError(() => sip008Servers({ version: 1 }), "servers");
});

Deno.test("a wrong SIP008 entry is left out with a reason that holds no password", () => {
  const good = { server: "a.example", server_port: 8388, password: "p1", method: "aes-128-gcm" };
  const list = sip008Servers({
    version: 1,
    servers: [
      { ...good, password: undefined },
      { ...good, method: "2022-blake3-aes-128-gcm", password: "short-secret" },
      { ...good, method: "no-such-cipher" },
      { ...good, server_port: 70000 },
      good,
      {
        ...good,
        server: undefined,
        server_port: undefined,
        address: "b.example",
        port: 443,
        name: "rust keys",
      },
      { ...good, method: "2022-blake3-aes-128-gcm", password: PSK16, unknown_field: 1 },
    ],
  });
  assert.deepEqual(list.servers.map((s) => `${s.server}:${s.serverPort}`), [
    "a.example:8388",
    "b.example:443",
    "a.example:8388",
  ]);
  assert.equal(list.servers[1]!.remarks, "rust keys");
  assert.equal(list.warnings.length, 4, list.warnings.join("\n"));
  assert.match(list.warnings[0]!, /Missing servers\[0\]\.password/);
  assert.match(list.warnings[1]!, /servers\[1\]/);
  assert.match(list.warnings[2]!, /servers\[2\]\.method/);
  assert.match(list.warnings[3]!, /servers\[3\]\.server_port/);
  assert.ok(!list.warnings.join("").includes("short-secret"));
});

Deno.test("online_config and --server-url: https, or http on loopback only, with an interval", async () => {
  assert.equal(onlineConfigSpec({}), undefined);
  assert.deepEqual(
    onlineConfigSpec({ online_config: { config_url: "https://p.example/x", update_interval: 60 } }),
    { url: "https://p.example/x", updateIntervalS: 60, allowInsecure: false, warnings: [] },
  );
  assert.equal(
    onlineConfigSpec({}, { server_url: "https://p.example/y" })?.updateIntervalS,
    3600,
  );
  const loopback = onlineConfigSpec({ server_url: "http://127.0.0.1:8080/t" });
  assert.match(loopback!.warnings[0]!, /plain http/);
  await assertConfigError(
    () => onlineConfigSpec({ server_url: "http://p.example/t" }),
    "in clear",
    "https://",
  );
  await assertConfigError(() => onlineConfigSpec({ server_url: "ftp://p.example/t" }), "ftp:");
  await assertConfigError(() => onlineConfigSpec({ server_url: "not a url" }), "server_url");
  await assertConfigError(() => onlineConfigSpec({ online_config: {} }), "config_url");
  await assertConfigError(
    () =>
      onlineConfigSpec({ online_config: { config_url: "https://p.example", update_interval: 0 } }),
    "update_interval",
  );
});

Deno.test("a SIP008 document is a valid local -c file; a fetched list replaces the file's servers", async () => {
  const vector = await loadVectors("sip008_example.json");
  const doc = parseConfigText(vector.document_text, "sip008.json");
  const { config, warnings } = buildLocalConfig(doc);
  assert.deepEqual(warnings, []);
  assert.equal(config.servers?.length, 2);
  assert.equal(config.servers?.[0]?.plugin?.name, "xxx");
  await assertConfigError(() => buildLocalConfig({ ...doc, version: 2 }), "version");

  const online = sip008Servers({
    version: 1,
    servers: [{ server: "o.example", server_port: 1, password: "p", method: "aes-256-gcm" }],
  }).servers;
  const replaced = buildLocalConfig(
    { server: "static.example", password: "s", online_config: { config_url: "https://x.example" } },
    {},
    online,
  ).config;
  assert.equal(replaced.server, "o.example");
  assert.equal(replaced.method, "aes-256-gcm");
  assert.deepEqual(replaced.onlineConfig, { url: "https://x.example", updateIntervalS: 3600 });
});

Deno.test("comments in JSON configs are blanked, strings and error positions untouched", async () => {
  assert.equal(
    blankJsonComments(`{"a": "//not", /* x\ny */ "b": 1} // end`),
    `{"a": "//not",     \n     "b": 1}       `,
  );
  assert.equal(blankJsonComments(`{"a": "\\"//"}`), `{"a": "\\"//"}`);
  await assertConfigError(
    () => parseConfigText(`{\n  // a comment\n  "a": 1,\n  oops\n}`, "c.json"),
    "line 4, column 3",
  );
  assert.deepEqual(parseConfigText(`{"url": "http://x/y"} // trailing`, "c.json"), {
    url: "http://x/y",
  });
});

Deno.test("a SIP008 entry with a legacy stream cipher needs the same opt-in as a config", () => {
  const doc = {
    version: 1,
    servers: [
      { server: "a.example", server_port: 1, password: "p", method: "aes-256-cfb" },
      { server: "b.example", server_port: 2, password: "p", method: "aes-256-gcm" },
    ],
  };
  const strict = sip008Servers(doc);
  assert.deepEqual(strict.servers.map((s) => s.server), ["b.example"]);
  assert.match(strict.warnings[0]!, /servers\[0\]\.method "aes-256-cfb": a legacy stream cipher/);
  assert.deepEqual(sip008Servers(doc, true).servers.map((s) => s.server), [
    "a.example",
    "b.example",
  ]);
  const spec = onlineConfigSpec({
    server_url: "https://p.example/x",
    allow_insecure_ciphers: true,
  });
  assert.equal(spec?.allowInsecure, true);
});
