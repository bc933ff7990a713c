import assert from "node:assert/strict";
import { buildServerConfigs } from "../../config/load.ts";
import { renderQr } from "../../config/qr.ts";
import { clientPlugin, guessHostAddress, serverUri, shareText } from "../../config/share.ts";
import { decodeSip002 } from "../../protocol/sip002.ts";

const ESC = "\x1b[";

function configs(file: Record<string, unknown>) {
  return buildServerConfigs({ password: "pw", method: "aes-128-gcm", ...file }).configs;
}

Deno.test("renderQr() draws a different block-character code for different text", async () => {
  const a = await renderQr("ss://a", { color: false });
  const b = await renderQr("ss://b", { color: false });
  assert.notEqual(a, b);
  assert.ok(!a.includes(ESC));
  assert.match(a, /[█▀▄]/);
  assert.ok(a.split("\n").length > 10);
});

Deno.test("renderQr() paints with ANSI colours by default", async () => {
  assert.ok((await renderQr("ss://a")).includes(ESC));
});

Deno.test("serverUri() encodes the listener's method, password and port for the given host", () => {
  const [config] = configs({ server_port: 8443 });
  assert.deepStrictEqual(decodeSip002(serverUri(config!, "203.0.113.7")), {
    method: "aes-128-gcm",
    password: "pw",
    host: "203.0.113.7",
    port: 8443,
  });
});

Deno.test("shareText() puts the given host in place of a wildcard address and says so", async () => {
  const text = await shareText(configs({ server: ["0.0.0.0", "::"] }), {
    host: "203.0.113.7",
    color: false,
  });
  const uris = text.split("\n").filter((line) => line.startsWith("ss://"));
  assert.deepStrictEqual(uris.map((uri) => decodeSip002(uri).host), [
    "203.0.113.7",
    "203.0.113.7",
  ]);
  assert.match(text, /uses 203\.0\.113\.7.*replace it with the server's public address/);
});

Deno.test("shareText() keeps a specific listen address and adds no note", async () => {
  const text = await shareText(configs({ server: "192.0.2.1" }), { host: "x", color: false });
  const [uri] = text.split("\n").filter((line) => line.startsWith("ss://"));
  assert.equal(decodeSip002(uri!).host, "192.0.2.1");
  assert.ok(!text.includes("replace it"));
});

Deno.test("guessHostAddress() returns a non-loopback IPv4 address of this machine, or 127.0.0.1", () => {
  const host = guessHostAddress();
  assert.match(host, /^\d+\.\d+\.\d+\.\d+$/);
  const own = Deno.networkInterfaces().filter((net) =>
    net.family === "IPv4" && !net.address.startsWith("127.")
  );
  if (own.length === 0) assert.equal(host, "127.0.0.1");
  else assert.ok(own.some((net) => net.address === host), host);
});

Deno.test("a server's URI names the client side of its plugin, without server-only options", () => {
  const config = {
    ...buildServerConfigs({ password: "pw", method: "aes-256-gcm", server_port: 8388 }).configs[0]!,
    plugin: { name: "/usr/bin/obfs-server", options: "obfs=tls;failover=198.51.100.1:443" },
  };
  const uri = serverUri(config, "vps.example", Uint8Array.of(0x16, 3, 1, 0, 0xa8, 1, 1));
  assert.equal(
    uri,
    "ss://YWVzLTI1Ni1nY206cHc@vps.example:8388/?plugin=obfs-local%3Bobfs%3Dtls" +
      "&prefix=%16%03%01%00%C2%A8%01%01",
  );
  const back = decodeSip002(uri);
  assert.equal(back.plugin, "obfs-local");
  assert.equal(back.pluginOpts, "obfs=tls");
  assert.deepEqual(back.prefix, Uint8Array.of(0x16, 3, 1, 0, 0xa8, 1, 1));
  assert.deepEqual(
    clientPlugin({ name: "ss-v2ray-plugin", options: "server;tls;host=a.example" }),
    {
      plugin: "v2ray-plugin",
      pluginOpts: "tls;host=a.example",
    },
  );
  assert.deepEqual(clientPlugin({ name: "v2ray-plugin", options: "server" }), {
    plugin: "v2ray-plugin",
  });
});
