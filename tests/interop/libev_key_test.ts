/**
 * libev's `--key` (the master key itself, base64, instead of a password), both ways: libev
 * ss-local --key → ssdeno server --key, and ssdeno local --key → libev ss-server --key. A key
 * of the wrong size is one clear line; a key config has no ss:// URI.
 */
import assert from "node:assert/strict";
import { buildLocalConfig, buildServerConfigs } from "../../config/load.ts";
import { shareText } from "../../config/share.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { startHttpFixture } from "../_fixtures.ts";
import { assertConfigError } from "../config/_assert.ts";
import { assertAllOk, checkTransfers, localTarget, SESSIONS_PER_CHECK } from "./_checks.ts";
import { peerTest, startPeer } from "./_peers.ts";

const METHOD = "aes-256-gcm";
/** libev reads keys in the URL-safe base64 alphabet (as its own generated keys are written). */
const KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))
  .replaceAll("+", "-").replaceAll("/", "_");

peerTest({
  name: "--key: libev ss-local and the ssdeno server share a base64 key, both ways",
  peers: ["ss-local", "ss-server", "curl"],
  async fn(t) {
    await t.step("libev ss-local --key → ssdeno server --key", async () => {
      await using http = startHttpFixture();
      const { configs } = buildServerConfigs({}, {
        server: "127.0.0.1",
        server_port: 0,
        method: METHOD,
        key: KEY,
        allow_private_targets: true,
      });
      const server = await startServer(configs[0]!, { graceMs: 0 });
      try {
        await using local = await startPeer("ss-local", {
          args: (port) => [
            ...["-s", "127.0.0.1", "-p", `${server.addr.port}`, "-b", "127.0.0.1"],
            ...["-l", `${port}`, "-m", METHOD, "-k", "unused", "--key", KEY],
          ],
        });
        await checkTransfers(local.port, localTarget(http), local.output);
        await assertAllOk(server, SESSIONS_PER_CHECK, "ssdeno server");
      } finally {
        await server.close();
      }
    });
    await t.step("ssdeno local --key → libev ss-server --key", async () => {
      await using http = startHttpFixture();
      await using peer = await startPeer("ss-server", {
        args: (port) => [
          ...["-s", "127.0.0.1", "-p", `${port}`, "-m", METHOD, "-k", "unused", "--key", KEY],
        ],
      });
      const { config } = buildLocalConfig({}, {
        server: "127.0.0.1",
        server_port: peer.port,
        local_port: 0,
        method: METHOD,
        key: KEY,
      });
      const local = await startLocal(config, { graceMs: 0 });
      try {
        await checkTransfers(local.addr.port, localTarget(http), peer.output);
        await assertAllOk(local, SESSIONS_PER_CHECK, "ssdeno local");
      } finally {
        await local.close();
      }
    });
  },
});

Deno.test("--key: wrong size, not base64, or with a password is one clear error; no URI", async () => {
  await assertConfigError(
    () => buildServerConfigs({}, { method: "aes-128-gcm", key: KEY }),
    "Invalid key: aes-128-gcm needs a key of 16 bytes (base64), got 32",
  );
  await assertConfigError(() => buildServerConfigs({}, { key: "%%%" }), "Invalid key");
  await assertConfigError(
    () => buildServerConfigs({}, { key: KEY, password: "pw" }),
    "Conflicting password and key",
  );
  // A 2022 key is what a 2022 password already is.
  const psk = buildServerConfigs({}, { method: "2022-blake3-aes-256-gcm", key: KEY });
  assert.equal(psk.configs[0]!.password, KEY.replaceAll("-", "+").replaceAll("_", "/"));
  const { configs } = buildServerConfigs({}, { method: METHOD, key: KEY, server_port: 8388 });
  await assert.rejects(() => shareText(configs), /configured with a key/);
});
