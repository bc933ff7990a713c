/**
 * `ssdeno check` as a user runs it: a subprocess given a `ss://` URI, against a good server, a
 * server with another password (ours and shadowsocks-rust, which both hold such a connection
 * silently), a server that is down, and a URI whose plugin is missing. Exit 0 only on success.
 */
import assert from "node:assert/strict";
import { encodeSip002 } from "../../protocol/sip002.ts";
import { startServer } from "../../server.ts";
import { startHttpFixture } from "../_fixtures.ts";
import { serverConfig } from "./_harness.ts";
import { UdpEcho } from "./_udp_harness.ts";
import { peerTest } from "../interop/_peers.ts";
import { startRustServer } from "../interop/_rust.ts";

async function runCheck(args: string[]): Promise<{ code: number; output: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      new URL("../../main.ts", import.meta.url).pathname,
      "check",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  });
  const { code, stdout, stderr } = await command.output();
  const text = new TextDecoder();
  return { code, output: text.decode(stdout) + text.decode(stderr) };
}

const uri = (method: string, password: string, port: number, extra = {}) =>
  encodeSip002({ method, password, host: "127.0.0.1", port, ...extra });

Deno.test("check: a good server passes TCP and UDP, exit 0, with each step timed", async () => {
  await using http = startHttpFixture();
  const echo = new UdpEcho();
  const server = await startServer(
    serverConfig("aes-256-gcm", { password: "good", mode: "tcp_and_udp" }),
    { graceMs: 0 },
  );
  try {
    const { code, output } = await runCheck([
      uri("aes-256-gcm", "good", server.addr.port),
      "--target",
      `127.0.0.1:${http.addr.port}`,
      "--udp-target",
      `127.0.0.1:${echo.port}`,
    ]);
    assert.equal(code, 0, output);
    assert.match(output, /ok\s+tcp connect\s+\d+ ms/);
    assert.match(output, /ok\s+request\s+\d+ ms\s+127\.0\.0\.1:\d+ answered: HTTP\/1\.1 404/);
    assert.match(output, /ok\s+udp\s+\d+ ms/);
    assert.match(output, /OK: the server works for TCP and UDP/);
    assert.equal(echo.echoed, 1);
  } finally {
    await server.close();
    await echo.close();
  }
});

Deno.test("check: a wrong password is held silently by our server, and said so; exit 1", async () => {
  await using http = startHttpFixture();
  for (const method of ["aes-128-gcm", "2022-blake3-aes-128-gcm"]) {
    const server = await startServer(
      serverConfig(method, {
        password: "AAECAwQFBgcICQoLDA0ODw==",
        handshakeTimeout: 30,
      }),
      { graceMs: 0 },
    );
    try {
      const { code, output } = await runCheck([
        uri(method, "DwAODQwLCgkIBwYFBAMCAQ==", server.addr.port),
        "--target",
        `127.0.0.1:${http.addr.port}`,
        "--handshake-timeout",
        "1",
      ]);
      assert.equal(code, 1, output);
      assert.match(output, /FAIL\s+request/);
      assert.match(
        output,
        /connection held silently until the 1 s deadline: likely a wrong password or method/,
      );
      if (method.startsWith("2022")) assert.match(output, /clock skew/);
    } finally {
      await server.close();
    }
  }
});

Deno.test("check: a server that is down, and a plugin that is not installed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const down = await runCheck([uri("aes-128-gcm", "x", port)]);
  assert.equal(down.code, 1, down.output);
  assert.match(down.output, /nothing listens on 127\.0\.0\.1:\d+: the server is down/);

  const plugin = await runCheck([uri("aes-128-gcm", "x", port, { plugin: "no-such-plugin-x" })]);
  assert.equal(plugin.code, 1, plugin.output);
  assert.match(plugin.output, /the plugin "no-such-plugin-x" is not installed/);
});

Deno.test("check --fet: a prefixed client passes, a plain one is told how to get there", async () => {
  const base = { method: "aes-256-gcm", password: "x", host: "127.0.0.1", port: 8388 };
  const plain = await runCheck([encodeSip002(base), "--fet"]);
  assert.equal(plain.code, 1, plain.output);
  assert.match(plain.output, /without a prefix: \d+ of 1000 first packets exempt/);
  assert.match(plain.output, /try a prefix, e\.g\. --prefix %16%03%01%00%C2%A8%01%01/);
  const prefixed = await runCheck([
    encodeSip002({ ...base, prefix: Uint8Array.of(0x16, 3, 1, 0, 0xa8, 1, 1) }),
    "--fet",
  ]);
  assert.equal(prefixed.code, 0, prefixed.output);
  assert.match(
    prefixed.output,
    /with the prefix 16 03 01 00 a8 01 01: 1000 of 1000 .*\(Ex5 1000\)/,
  );
  const http = await runCheck([encodeSip002(base), "--fet", "--prefix", "POST%20"]);
  assert.equal(http.code, 0, http.output);
});

peerTest({
  name:
    "check: a wrong password on rust ssserver is diagnosed as a wrong password; the right one passes",
  peers: ["ssserver"],
  async fn() {
    await using http = startHttpFixture();
    await using peer = await startRustServer({ method: "aes-256-gcm", password: "right" });
    const good = await runCheck([
      uri("aes-256-gcm", "right", peer.port),
      "--target",
      `127.0.0.1:${http.addr.port}`,
    ]);
    assert.equal(good.code, 0, good.output + peer.output());
    const wrong = await runCheck([
      uri("aes-256-gcm", "wrong", peer.port),
      "--target",
      `127.0.0.1:${http.addr.port}`,
      "--handshake-timeout",
      "2",
    ]);
    assert.equal(wrong.code, 1, wrong.output);
    assert.match(wrong.output, /wrong password or method/, wrong.output);
  },
});
