/**
 * `main.ts` as users meet it: a subprocess, its exit code, stdout and stderr. Each test runs in
 * its own temporary directory, so the zero-config file lands there.
 */
import assert from "node:assert/strict";
import { decodeSip002 } from "../protocol/sip002.ts";
import { freePort, waitForTcpPort } from "./interop/_peers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
/** How long a started server may take to print its URI before the test gives up. */
const STARTUP_TIMEOUT_MS = 30_000;

function ssdeno(args: string[], cwd: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", CONFIG, MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs to completion and returns the exit code and the decoded output. */
async function runSsdeno(args: string[], cwd: string) {
  const { code, stdout, stderr } = await ssdeno(args, cwd).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Starts a server process, waits for its first `ss://` line, stops it with SIGTERM and returns
 * that line with the exit code and the rest of the output.
 */
async function serveUntilUri(args: string[], cwd: string) {
  const child = ssdeno(args, cwd).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let uri: string | undefined;
  const timer = setTimeout(() => child.kill("SIGKILL"), STARTUP_TIMEOUT_MS);
  try {
    while (uri === undefined) {
      const { value, done } = await lines.read();
      if (done) break;
      stdout += value;
      uri = stdout.split("\n").find((line, i, all) =>
        line.startsWith("ss://") && i < all.length - 1
      );
    }
    if (uri !== undefined) child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      stdout += value;
    }
  } finally {
    clearTimeout(timer);
  }
  const { code } = await child.status;
  return { uri, code, stdout, stderr: await stderr };
}

Deno.test("a typo'd method exits 2 with one line on stderr and no stack trace", async () => {
  await withTempDir(async (dir) => {
    const { code, stdout, stderr } = await runSsdeno(["server", "-m", "aes-257-gcm"], dir);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, /^ssdeno: Invalid method "aes-257-gcm": expected one of .*aes-256-gcm/);
    assert.doesNotMatch(stderr, /^\s+at /m);
    // The flags were checked before the zero-config file would have been written.
    await assert.rejects(Deno.stat(`${dir}/ssdeno.json`), Deno.errors.NotFound);
  });
});

Deno.test("an unknown flag exits 2 naming the flag", async () => {
  await withTempDir(async (dir) => {
    const { code, stderr } = await runSsdeno(["local", "--sever", "x"], dir);
    assert.equal(code, 2);
    assert.equal(stderr, `ssdeno: Unknown flag "--sever": see ssdeno --help for the flags\n`);
  });
});

Deno.test("url prints the ss:// URI of the flags' server and exits 0", async () => {
  await withTempDir(async (dir) => {
    const args = ["url", "-s", "203.0.113.9", "-p", "8443", "-k", "s3cret", "-m", "aes-256-gcm"];
    const { code, stdout } = await runSsdeno(args, dir);
    assert.equal(code, 0);
    const uri = stdout.split("\n").find((line) => line.startsWith("ss://"));
    assert.ok(uri, stdout);
    assert.deepStrictEqual(decodeSip002(uri), {
      method: "aes-256-gcm",
      password: "s3cret",
      host: "203.0.113.9",
      port: 8443,
    });
    assert.match(stdout, /█/);
  });
});

Deno.test("url -c prints one URI per listener of the config file", async () => {
  await withTempDir(async (dir) => {
    const config = { server: "198.51.100.4", method: "aes-128-gcm", port_password: { "1": "a" } };
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
    const { code, stdout } = await runSsdeno(["url", "-c", "c.json"], dir);
    assert.equal(code, 0);
    const uris = stdout.split("\n").filter((line) => line.startsWith("ss://"));
    assert.deepStrictEqual(uris.map(decodeSip002), [
      { method: "aes-128-gcm", password: "a", host: "198.51.100.4", port: 1 },
    ]);
  });
});

Deno.test("a zero-config server writes ssdeno.json, prints its URI, and later runs reuse it", async () => {
  await withTempDir(async (dir) => {
    const first = await serveUntilUri(["server", "-p", "0"], dir);
    assert.ok(first.uri, `no ss:// line; stdout: ${first.stdout} stderr: ${first.stderr}`);
    assert.equal(first.code, 0, first.stderr);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/ssdeno.json`));
    // Exactly what it runs: the -p it was given, TCP and UDP.
    assert.deepStrictEqual({ ...file, password: "" }, {
      server: "0.0.0.0",
      server_port: 0,
      password: "",
      method: "2022-blake3-aes-256-gcm",
      mode: "tcp_and_udp",
      timeout: 300,
    });
    assert.equal(atob(file.password).length, 32);
    const shared = decodeSip002(first.uri);
    assert.equal(shared.method, "2022-blake3-aes-256-gcm");
    // 2022 URIs carry percent-encoded userinfo, never base64 (SIP002 for 2022 methods).
    assert.match(first.uri, /^ss:\/\/2022-blake3-aes-256-gcm:/);
    assert.equal(shared.password, file.password);
    assert.notEqual(shared.port, 0, "the URI should carry the bound port, not the file's");
    assert.match(first.stdout, /replace it with the server's public address/);
    assert.match(first.stderr, /Created ssdeno\.json/);

    // Later starts print the URI only when asked (it holds the key).
    const second = await serveUntilUri(["server", "-p", "0", "--show-url"], dir);
    assert.ok(second.uri, second.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(decodeSip002(second.uri).password, file.password);
    assert.match(second.stderr, /Using ssdeno\.json/);
    assert.deepStrictEqual(JSON.parse(await Deno.readTextFile(`${dir}/ssdeno.json`)), file);

    // The file says port 0 (any free port): the URI needs the real one.
    const noPort = await runSsdeno(["url"], dir);
    assert.equal(noPort.code, 2);
    assert.match(noPort.stderr, /port chosen at start .*-p PORT/);
    const url = await runSsdeno(["url", "-p", "8388"], dir);
    assert.equal(url.code, 0, url.stderr);
    const saved = url.stdout.split("\n").find((line) => line.startsWith("ss://"));
    assert.ok(saved, url.stdout);
    assert.deepStrictEqual([decodeSip002(saved).password, decodeSip002(saved).port], [
      file.password,
      8388,
    ]);
  });
});

Deno.test("a server whose port is taken exits 1 with one clear line", async () => {
  await withTempDir(async (dir) => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = String(taken.addr.port);
    const args = ["server", "-s", "127.0.0.1", "-p", port, "-k", "pw", "-q"];
    const { code, stdout, stderr } = await runSsdeno(args, dir);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, new RegExp(`^ssdeno: Cannot start on 127\\.0\\.0\\.1:${port}: .+`));
    assert.doesNotMatch(stderr, /^\s+at /m);
  });
});

Deno.test("--help prints the usage and exits 0", async () => {
  await withTempDir(async (dir) => {
    const { code, stdout } = await runSsdeno(["--help"], dir);
    assert.equal(code, 0);
    assert.match(stdout, /^ssdeno \d+\.\d+\.\d+: /);
    assert.match(stdout, /-c, --config FILE/);
  });
});

Deno.test("first run: -m picks the method and a key of its size, written as it runs", async () => {
  for (const method of ["aes-128-gcm", "2022-blake3-aes-128-gcm"]) {
    await withTempDir(async (dir) => {
      const run = await serveUntilUri(["server", "-m", method, "-p", "0"], dir);
      assert.equal(run.code, 0, run.stderr);
      const file = JSON.parse(await Deno.readTextFile(`${dir}/ssdeno.json`));
      assert.equal(file.method, method);
      assert.equal(decodeSip002(run.uri!).method, method);
      if (method.startsWith("2022-")) assert.equal(atob(file.password).length, 16);
    });
  }
});

Deno.test("first run: conflicting or listener flags without -k are errors that say what to do", async () => {
  await withTempDir(async (dir) => {
    assert.equal((await serveUntilUri(["server", "-p", "0"], dir)).code, 0);
    const conflict = await runSsdeno(["server", "-m", "aes-128-gcm", "-p", "0"], dir);
    assert.equal(conflict.code, 2);
    assert.match(conflict.stderr, /ssdeno\.json says method .* but the command line says/);
    const address = await runSsdeno(["server", "-s", "127.0.0.1", "-p", "0"], dir);
    assert.equal(address.code, 2);
    assert.match(address.stderr, /Missing password: server describes a listener, so give -k/);
  });
});

Deno.test("-q never prints the key; url prints one URI per user and takes --public-host", async () => {
  await withTempDir(async (dir) => {
    const quiet = await serveQuietly(dir);
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout.includes("ss://"), false, quiet.stdout);
    assert.ok(await Deno.stat(`${dir}/ssdeno.json`), "the first run did create its file");
    const psk = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const ipsk = psk();
    const users = [{ name: "alice", password: psk() }, { name: "bob", password: psk() }];
    await Deno.writeTextFile(
      `${dir}/multi.json`,
      JSON.stringify({
        server: "0.0.0.0",
        server_port: 8443,
        method: "2022-blake3-aes-128-gcm",
        password: ipsk,
        users,
      }),
    );
    const url = await runSsdeno(["url", "-c", "multi.json", "--public-host", "vpn.example"], dir);
    assert.equal(url.code, 0, url.stderr);
    const uris = url.stdout.split("\n").filter((line) => line.startsWith("ss://")).map(
      decodeSip002,
    );
    assert.deepEqual(uris.map((u) => [u.host, u.port, u.password, u.tag]), [
      ["vpn.example", 8443, `${ipsk}:${users[0]!.password}`, "alice"],
      ["vpn.example", 8443, `${ipsk}:${users[1]!.password}`, "bob"],
    ]);
  });
});

/** A first run with -q on a free port: started (the port answers), stopped; its stdout. */
async function serveQuietly(cwd: string) {
  const port = freePort();
  const child = ssdeno(["server", "-q", "-p", `${port}`], cwd).spawn();
  const stdout = new Response(child.stdout).text();
  const stderr = new Response(child.stderr).text();
  try {
    await waitForTcpPort(port, { exited: child.status });
  } finally {
    child.kill("SIGTERM");
  }
  await stderr;
  return { code: (await child.status).code, stdout: await stdout };
}
