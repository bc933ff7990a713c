import assert from "node:assert/strict";
import { parseCommandLine } from "../../config/cli.ts";
import { buildLocalConfig, buildTunnelConfig } from "../../config/load.ts";
import { findMethod } from "../../crypto/methods.ts";
import { evpBytesToKey } from "../../crypto/kdf.ts";
import { openUdpPacket, sealUdpPacket } from "../../protocol/udp_packet.ts";
import { assertConfigError } from "./_assert.ts";

const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const BASE = { server: "ss.example", password: "pw", method: "aes-256-gcm" };

Deno.test("prefix in a local config, per server, and from --prefix or a ss:// URI", () => {
  const top = buildLocalConfig({ ...BASE, prefix: "\u0016\u0003\u0001\u0000\u00a8\u0001\u0001" });
  assert.deepEqual(top.config.servers?.[0]?.prefix, Uint8Array.of(0x16, 3, 1, 0, 0xa8, 1, 1));

  const perServer = buildLocalConfig({
    prefix: "POST ",
    servers: [
      { server: "a.example", server_port: 1, password: "p", method: "aes-256-gcm" },
      { server: "b.example", server_port: 2, password: "p", method: "aes-128-gcm", prefix: "GET " },
    ],
  }).config.servers!;
  assert.deepEqual(perServer.map((s) => s.prefix), [bytes("POST "), bytes("GET ")]);

  const flag = parseCommandLine(["local", "-s", "h", "-k", "pw", "--prefix", "HTTP%2F1.1+"]);
  assert.equal(flag.name === "local" && flag.flags["prefix"], "HTTP/1.1 ");
  const uri = parseCommandLine([
    "tunnel",
    "--url",
    "ss://YWVzLTI1Ni1nY206cHc@h.example:8388/?outline=1&prefix=%16%03%01%00%C2%A8%01%01",
    "-L",
    "1.1.1.1:53",
  ]);
  assert.ok(uri.name === "tunnel");
  const tunnel = buildTunnelConfig({}, uri.flags).config;
  assert.deepEqual(tunnel.servers?.[0]?.prefix, Uint8Array.of(0x16, 3, 1, 0, 0xa8, 1, 1));
});

Deno.test("a prefix that leaves fewer than 12 random salt bytes is refused; above 16, a warning", async () => {
  // aes-128-gcm salts are 16 bytes: 4 prefix bytes at most.
  buildLocalConfig({ ...BASE, method: "aes-128-gcm", prefix: "GET " });
  await assertConfigError(
    () => buildLocalConfig({ ...BASE, method: "aes-128-gcm", prefix: "POST " }),
    "prefix",
    "at most 4 bytes",
  );
  await assertConfigError(
    () => buildLocalConfig({ ...BASE, method: "none", prefix: "A" }),
    "prefix",
  );
  const { warnings } = buildLocalConfig({ ...BASE, prefix: "x".repeat(18) });
  assert.ok(warnings.some((w) => w.includes("longer than the 16")), warnings.join("\n"));
  await assertConfigError(
    () => buildLocalConfig({ ...BASE, prefix: "\u0100" }),
    "prefix",
    "U+0100",
  );
});

Deno.test("udp_prefix: AEAD-2017 only, and every UDP packet's salt starts with it", async () => {
  await assertConfigError(
    () =>
      buildLocalConfig({
        ...BASE,
        method: "2022-blake3-aes-128-gcm",
        password: "AAECAwQFBgcICQoLDA0ODw==",
        udp_prefix: "k{",
      }),
    "udp_prefix",
    "AEAD-2017 only",
  );
  const config = buildLocalConfig({ ...BASE, udp_prefix: "k{\u0001 " }).config;
  const prefix = config.servers![0]!.udpPrefix!;
  assert.deepEqual(prefix, Uint8Array.of(0x6b, 0x7b, 1, 0x20));
  const method = findMethod("aes-256-gcm")!;
  const key = evpBytesToKey("pw", method.keySize);
  const salts = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const packet = sealUdpPacket(method, key, Uint8Array.of(1, 2, 3), undefined, prefix);
    assert.deepEqual(packet.subarray(0, 4), prefix);
    salts.add(packet.subarray(0, method.saltSize).join());
    assert.deepEqual(openUdpPacket(method, key, packet), Uint8Array.of(1, 2, 3));
  }
  assert.equal(salts.size, 20, "the rest of each salt stays random");
});
