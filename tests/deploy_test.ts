/**
 * deploy/ssdeno.service: systemd accepts it, and its ExecStart is a command that starts a
 * server (run here with the paths pointed at this checkout and a temporary config).
 */
import assert from "node:assert/strict";
import { serveV8Flags } from "./_child.ts";
import { findPeer } from "./interop/_peers.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const UNIT = `${ROOT}/deploy/ssdeno.service`;
const analyze = findPeer("systemd-analyze");

Deno.test({
  name: "systemd-analyze verify accepts deploy/ssdeno.service",
  ignore: analyze === undefined,
  async fn() {
    const { code, stdout, stderr } = await new Deno.Command(analyze!, {
      args: ["verify", UNIT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, text);
    assert.equal(text.trim(), "", "systemd-analyze has remarks");
  },
});

Deno.test("the unit's ExecStart starts a server with the permissions it grants", async () => {
  const unit = await Deno.readTextFile(UNIT);
  const exec = /^ExecStart=(.+)$/m.exec(unit)?.[1];
  assert.ok(exec, "no ExecStart");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ server: "127.0.0.1", server_port: 0, password: "x", method: "aes-128-gcm" }),
    );
    const args = exec.split(" ").map((word) =>
      word.replaceAll("/opt/ssdeno", ROOT).replaceAll("/etc/ssdeno", dir)
        .replaceAll("/var/lib/ssdeno", dir)
    );
    assert.equal(args[0], "/usr/bin/deno");
    assert.deepEqual(
      args.filter((word) => word.startsWith("--v8-flags=")),
      serveV8Flags(),
      "the unit runs V8 as `deno task serve` does",
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: args.slice(1),
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    while (!log.includes("file limit")) {
      const { value, done } = await lines.read();
      if (done) break;
      log += value;
    }
    child.kill("SIGTERM");
    await lines.cancel();
    const status = await child.status;
    clearTimeout(timer);
    assert.match(log, /server listening on 127\.0\.0\.1:\d+/);
    assert.match(log, /file limit \d+/, "the limit is readable with the unit's permissions");
    assert.equal(status.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
