import assert from "node:assert/strict";
import { buildServerConfigs } from "../../config/load.ts";
import { loadOrCreateZeroConfig, newZeroConfig, readZeroConfig } from "../../config/zero_config.ts";
import { ConfigError } from "../../config/errors.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("newZeroConfig() holds a fresh 32-byte base64 key for 2022-blake3-aes-256-gcm", () => {
  const a = newZeroConfig();
  const b = newZeroConfig();
  assert.deepStrictEqual({ ...a, password: "" }, {
    server: "0.0.0.0",
    server_port: 8388,
    password: "",
    method: "2022-blake3-aes-256-gcm",
    mode: "tcp_and_udp",
    timeout: 300,
  });
  assert.equal(atob(a.password as string).length, 32);
  assert.notEqual(a.password, b.password);
});

Deno.test("loadOrCreateZeroConfig() creates the file once, owner-only, and reuses it after", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ssdeno.json`;
    const first = await loadOrCreateZeroConfig(buildServerConfigs, path);
    assert.equal(first.created, true);
    const written = JSON.parse(await Deno.readTextFile(path));
    assert.equal(first.value.configs[0]!.password, written.password);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    const second = await loadOrCreateZeroConfig(buildServerConfigs, path);
    assert.equal(second.created, false);
    assert.deepStrictEqual(second.value, first.value);
    assert.deepStrictEqual(await readZeroConfig(path), written);
  });
});

Deno.test("loadOrCreateZeroConfig() never overwrites an existing file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ssdeno.json`;
    const mine = '{"password": "mine", "method": "aes-128-gcm", "server_port": 9}\n';
    await Deno.writeTextFile(path, mine);
    const loaded = await loadOrCreateZeroConfig(buildServerConfigs, path);
    assert.equal(loaded.created, false);
    assert.equal(loaded.value.configs[0]!.password, "mine");
    assert.equal(await Deno.readTextFile(path), mine);
  });
});

Deno.test("loadOrCreateZeroConfig() writes nothing when validation fails", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ssdeno.json`;
    await assert.rejects(
      loadOrCreateZeroConfig((file) => buildServerConfigs(file, { method: "bogus" }), path),
      ConfigError,
    );
    assert.equal(await readZeroConfig(path), undefined);
  });
});

Deno.test("loadOrCreateZeroConfig() explains a directory it cannot write to", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      loadOrCreateZeroConfig(buildServerConfigs, `${dir}/no/such/dir/ssdeno.json`),
      (error: unknown) =>
        error instanceof ConfigError && error.message.startsWith(`Cannot create "${dir}/no/`) &&
        error.message.includes("-c FILE"),
    );
  });
});
