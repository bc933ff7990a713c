/**
 * `ss://` URIs (SIP002) both ways with shadowsocks-rust's `ssurl`:
 *
 * - every URI `ssurl -e` prints for a rust config is read by `ssdeno local --url` (through the
 *   same CLI parsing and config building as the command), and the local then carries traffic
 *   through a rust `ssserver` of that config;
 * - every URI `ssdeno url` prints (the real command, in a subprocess) is decoded by `ssurl -d`
 *   into the same server, port, method and password.
 * @module
 */
import assert from "node:assert/strict";
import { parseCli } from "../../config/cli.ts";
import { buildLocalConfig } from "../../config/load.ts";
import { startLocal } from "../../local.ts";
import { curlViaSocks, deterministicBytes, startHttpFixture } from "../_fixtures.ts";
import { findPeer, peerTest } from "./_peers.ts";
import { startRustServer } from "./_rust.ts";
import { passwordFor, SIX_METHODS as METHODS } from "./_scenarios.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** AEAD-2017 passwords are free text: these carry every character SIP002 must escape. */
const AWKWARD_PASSWORDS = ["p@ss:w/o?r#d%20+=&", "пароль with spaces", "a"];

interface Server {
  server: string;
  server_port: number;
  method: string;
  password: string;
}

async function run(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${code}: ${decoder.decode(stderr)}`);
  }
  return decoder.decode(stdout);
}

/** `ssurl -e` of a one-server rust config. */
async function rustEncode(server: Server): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/server.json`, JSON.stringify(server));
    return (await run(findPeer("ssurl")!, ["-e", `${dir}/server.json`])).trim();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * `ssurl -d URI`, which prints the server as JSON5 (unquoted keys, trailing commas): the four
 * fields a client needs, read line by line.
 */
async function rustDecode(uri: string): Promise<Server> {
  const text = await run(findPeer("ssurl")!, ["-d", uri]);
  const field = (key: string) => {
    const match = new RegExp(`^\\s*${key}: (.*?),?$`, "m").exec(text);
    if (!match) throw new Error(`ssurl -d printed no ${key}:\n${text}`);
    return JSON.parse(match[1]!);
  };
  return {
    server: field("server"),
    server_port: field("server_port"),
    method: field("method"),
    password: field("password"),
  };
}

/** The local config `ssdeno local --url URI -l 0` runs with. */
async function localFromUri(uri: string) {
  const command = await parseCli(["local", "--url", uri, "-b", "127.0.0.1", "-l", "0"]);
  assert.ok("flags" in command);
  return buildLocalConfig(command.file ?? {}, command.flags).config;
}

/** The configs of both directions: every method, and awkward free-text passwords. */
function cases(port: number): Server[] {
  return [
    ...METHODS.map((method) => ({ method, password: passwordFor(method) })),
    ...AWKWARD_PASSWORDS.map((password) => ({ method: "chacha20-ietf-poly1305", password })),
  ].map((c) => ({ server: "127.0.0.1", server_port: port, ...c }));
}

peerTest({
  name: "every URI that rust's ssurl prints is read by ssdeno local --url, which then relays",
  peers: ["ssurl", "ssserver", "curl"],
  async fn(t) {
    await using http = startHttpFixture();
    for (const { method, password } of cases(0)) {
      await t.step(`${method} with ${JSON.stringify(password)}`, async () => {
        await using server = await startRustServer({ method, password, udp: false });
        const uri = await rustEncode({
          server: "127.0.0.1",
          server_port: server.port,
          method,
          password,
        });
        const config = await localFromUri(uri);
        assert.deepEqual(
          [config.server, config.serverPort, config.method, config.password],
          ["127.0.0.1", server.port, method, password],
          uri,
        );
        const local = await startLocal(config, { graceMs: 0 });
        try {
          const result = await curlViaSocks(local.addr.port, http.url("/blob?size=65536"));
          assert.equal(result.code, 0, `${result.stderr}\n${server.output()}`);
          assert.deepEqual(result.stdout, deterministicBytes(65536));
        } finally {
          await local.close();
        }
      });
    }
  },
});

peerTest({
  name: "every URI that ssdeno url prints is decoded by rust's ssurl -d to the same server",
  peers: ["ssurl"],
  async fn(t) {
    const all = [
      ...cases(8388),
      {
        server: "::1",
        server_port: 443,
        method: "2022-blake3-aes-256-gcm",
        password: passwordFor("2022-blake3-aes-256-gcm"),
      },
      { server: "example.com", server_port: 65535, method: "aes-256-gcm", password: "x" },
    ];
    for (const expected of all) {
      await t.step(`${expected.method} at ${expected.server}`, async () => {
        const dir = await Deno.makeTempDir();
        try {
          await Deno.writeTextFile(`${dir}/server.json`, JSON.stringify(expected));
          const output = await run(Deno.execPath(), [
            ...["run", "-A", "--quiet", "--config", CONFIG, MAIN],
            ...["url", "-c", `${dir}/server.json`],
          ]);
          const uris = output.split("\n").filter((line) => line.startsWith("ss://"));
          assert.equal(uris.length, 1, output);
          assert.deepEqual(await rustDecode(uris[0]!), expected, uris[0]);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  },
});
