/**
 * The process features libev users run with, on `main.ts` as a subprocess: `-a` (give up root
 * after binding), `-f` (PID file, removed at exit), `-n` (file limit), `--reuse-port`, and
 * `--forbidden-ip`. Needs root for `-a`; tests that need it say so and fail elsewhere in CI.
 */
import assert from "node:assert/strict";
import { buildServerConfigs } from "../../config/load.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { localConfig, socksConnect, waitFor } from "./_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";

const isRoot = Deno.uid() === 0;

/** A file of another process under /proc (through `cat`: Deno wants --allow-all to read it). */
async function procFile(pid: number, name: string): Promise<string> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/${name}`] }).output();
  return new TextDecoder().decode(stdout);
}

async function statusField(pid: number, field: string): Promise<string> {
  const status = await procFile(pid, "status");
  return new RegExp(`^${field}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim() ?? "";
}

Deno.test({
  name: "-a nobody -f FILE -n 4096: binds, writes the PID, runs as nobody, serves, cleans up",
  ignore: !isRoot && Deno.env.get("CI") !== "true",
  async fn() {
    assert.ok(isRoot, "this test needs root (to give it up)");
    await using http = startHttpFixture();
    const dir = await Deno.makeTempDir();
    // The PID file is removed after the switch, by nobody: its directory must allow that.
    await Deno.chmod(dir, 0o777);
    const pidFile = `${dir}/ssdeno.pid`;
    const port = freePort();
    const child = spawnSsdeno([
      "server",
      "-s",
      "127.0.0.1",
      "-p",
      `${port}`,
      "-k",
      "process-test",
      "-m",
      "aes-128-gcm",
      "--allow-private-targets",
      "-a",
      "nobody",
      "-f",
      pidFile,
      "-n",
      "4096",
    ]);
    try {
      await waitFor(() => child.log().includes("running as nobody"), 10_000, child.log());
      assert.equal((await Deno.readTextFile(pidFile)).trim(), `${child.pid}`);
      assert.match(await statusField(child.pid, "Uid"), /^65534\s+65534\s+65534\s+65534$/);
      assert.match(await statusField(child.pid, "Gid"), /^65534\s+65534\s+65534\s+65534$/);
      assert.doesNotMatch(await statusField(child.pid, "Groups"), /\b0\b/);
      const limits = await procFile(child.pid, "limits");
      assert.match(limits, /Max open files\s+4096\s/);

      const local = await startLocal(
        localConfig("aes-128-gcm", port, { password: "process-test" }),
      );
      try {
        const result = await curlViaSocks(local.addr.port, http.url("/blob?size=2048"));
        assert.equal(result.code, 0, `${result.stderr}\n${child.log()}`);
      } finally {
        await local.close();
      }
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, child.log());
      await assert.rejects(() => Deno.stat(pidFile), Deno.errors.NotFound);
    } finally {
      await child.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("-a with an unknown user fails before binding; a non-root process cannot switch", async () => {
  const port = freePort();
  const unknown = spawnSsdeno([
    "server",
    "-s",
    "127.0.0.1",
    "-p",
    `${port}`,
    "-k",
    "x",
    "-a",
    "no-such-user-here",
  ]);
  assert.equal((await unknown.status).code, 2);
  await unknown.close();
  assert.match(unknown.log(), /Invalid user "no-such-user-here": no such user/);
  assert.doesNotMatch(unknown.log(), /listening/);

  if (!isRoot) return;
  const denoDir = await Deno.makeTempDir();
  await Deno.chmod(denoDir, 0o777);
  // nobody may not be able to read this checkout (a clone in a 0700 temp folder): a copy it can.
  const tree = await Deno.makeTempDir();
  const root = new URL("../../", import.meta.url).pathname;
  const copy = await new Deno.Command("bash", {
    args: [
      "-c",
      'cd "$0" && tar --exclude=./.git -cf - . | tar -xf - -C "$1" && chmod -R a+rX "$1"',
      root,
      tree,
    ],
  }).output();
  assert.equal(copy.code, 0, new TextDecoder().decode(copy.stderr));
  // As nobody (setpriv), asking to become root is refused, and the port is not left serving.
  const setpriv = new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      // No npm packages to fetch into the empty cache: main.ts needs none.
      "--no-config",
      "--unstable-net",
      `${tree}/main.ts`,
      "server",
      "-s",
      "127.0.0.1",
      "-p",
      `${port}`,
      "-k",
      "x",
      "-a",
      "root",
    ],
    stdout: "null",
    stderr: "piped",
    // nobody cannot read root's Deno cache: a cache of its own.
    env: { DENO_DIR: denoDir, HOME: "/tmp" },
  });
  const { code, stderr } = await setpriv.output();
  const log = new TextDecoder().decode(stderr);
  assert.equal(code, 1, log);
  assert.match(log, /Cannot run as "root": switching to "root" needs root/);
  await Deno.remove(denoDir, { recursive: true });
  await Deno.remove(tree, { recursive: true });
});

Deno.test("--reuse-port lets two servers share a port", async () => {
  const port = freePort();
  const args = (name: string) => [
    "server",
    "-s",
    "127.0.0.1",
    "-p",
    `${port}`,
    "-k",
    name,
    "--reuse-port",
  ];
  await using first = spawnSsdeno(args("one"));
  await waitForTcpPort(port);
  await using second = spawnSsdeno(args("two"));
  await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(second.log()), 10_000, second.log());
  assert.doesNotMatch(second.log(), /in use/i);
  assert.match(first.log(), /listening/);
});

Deno.test("forbidden_ip refuses those targets even where private targets are allowed", async () => {
  const { configs } = buildServerConfigs({
    password: "fb",
    method: "aes-128-gcm",
    server: "127.0.0.1",
    server_port: 0,
    allow_private_targets: true,
    forbidden_ip: "127.0.0.2, 10.0.0.0/8",
  });
  const server = await startServer(configs[0]!, { graceMs: 0 });
  const local = await startLocal(
    localConfig("aes-128-gcm", server.addr.port, { password: "fb" }),
    { graceMs: 0 },
  );
  try {
    const blocked = await socksConnect(local.addr.port, {
      type: "ipv4",
      host: "127.0.0.2",
      port: 80,
    });
    await blocked.conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
    assert.equal(await blocked.conn.read(new Uint8Array(16)), null, "the server closes it");
    blocked.conn.close();
    await waitFor(() => server.stats.statuses.ERR_BLOCKED >= 1, 5000, "a blocked session");
    await using http = startHttpFixture();
    const allowed = await curlViaSocks(local.addr.port, http.url("/blob?size=10"));
    assert.equal(allowed.code, 0, allowed.stderr);
  } finally {
    await local.close();
    await server.close();
  }
  assert.throws(
    () => buildServerConfigs({ password: "x", forbidden_ip: "10.0.0.0/8,not-an-ip" }),
    /Invalid forbidden_ip "not-an-ip"/,
  );
  // "" cleared the Python original's default; here it adds nothing (and is no error).
  assert.equal(buildServerConfigs({ password: "x", forbidden_ip: "" }).configs[0]!.acl, undefined);
});
