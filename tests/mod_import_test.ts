/**
 * `mod.ts` as another project uses it: a script in a temporary directory (no deno.json, no
 * import map) imports it by file URL, starts a server and a local, and relays a few bytes.
 * Bare specifiers resolved only through our deno.json would fail here.
 */
import assert from "node:assert/strict";

const MOD = new URL("../mod.ts", import.meta.url).href;

Deno.test("mod.ts imports from a project without our deno.json, and its services relay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-mod-" });
  try {
    const script = `
import { startLocal, startServer } from ${JSON.stringify(MOD)};
const common = {
  method: "2022-blake3-aes-128-gcm", password: "AAECAwQFBgcICQoLDA0ODw==", timeout: 60,
  handshakeTimeout: 10, mode: "tcp_only", noDelay: true, udpTimeout: 60, udpMaxAssociations: 16,
} as const;
const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const server = await startServer({ ...common, address: "127.0.0.1", port: 0,
  allowPrivateTargets: true, ipv6First: false });
const local = await startLocal({ ...common, server: "127.0.0.1", serverPort: server.addr.port,
  localAddress: "127.0.0.1", localPort: 0 });
const app = await Deno.connect({ hostname: "127.0.0.1", port: local.addr.port });
const read = async (conn: Deno.Conn, n: number) => {
  const out = new Uint8Array(n); let got = 0;
  while (got < n) { const k = await conn.read(out.subarray(got)); if (k === null) throw new Error("eof"); got += k; }
  return out;
};
await app.write(Uint8Array.of(5, 1, 0)); await read(app, 2);
await app.write(Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, target.addr.port >> 8, target.addr.port & 255));
await read(app, 10);
await app.write(new TextEncoder().encode("ping"));
const peer = await target.accept();
console.log(new TextDecoder().decode(await read(peer, 4)));
peer.close(); app.close(); target.close();
await local.close(); await server.close();
`;
    await Deno.writeTextFile(`${dir}/app.ts`, script);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-env", "--allow-ffi", "app.ts"],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    const decoder = new TextDecoder();
    assert.equal(code, 0, decoder.decode(stderr));
    assert.equal(decoder.decode(stdout).trim(), "ping");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
