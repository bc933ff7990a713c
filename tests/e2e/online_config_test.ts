/**
 * SIP008 online config, as a user runs it: `ssdeno local -c` with `online_config` pointing at a
 * provider (a loopback HTTP server here), servers started in this process. The list drives the
 * local, failover works across its servers, a refresh switches to a new list, a broken refresh
 * keeps the last good list, and neither passwords nor the URL's secret path reach the log.
 */
import assert from "node:assert/strict";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import { serverConfig, waitFor } from "./_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";

const SECRET_PATH = "/sub/s3cr3t-token.json";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A SIP008 provider whose answer the test changes. */
function startProvider() {
  let answer: { status: number; body: string } = { status: 503, body: "" };
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    requests++;
    if (new URL(request.url).pathname !== SECRET_PATH) return new Response("", { status: 404 });
    return new Response(answer.body, {
      status: answer.status,
      headers: { "content-type": "application/json; charset=utf-8" },
    });
  });
  const { port } = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}${SECRET_PATH}`,
    get requests() {
      return requests;
    },
    set(status: number, body: string) {
      answer = { status, body };
    },
    close: () => server.shutdown(),
  };
}

interface Entry {
  port: number;
  method: string;
  password: string;
}

function document(entries: Entry[]): string {
  // Written as providers do, with a comment, ids, remarks and usage.
  return `{
  // served by the test
  "version": 1,
  "servers": [${
    entries.map((entry, i) =>
      JSON.stringify({
        id: crypto.randomUUID(),
        remarks: `node ${i}`,
        server: "127.0.0.1",
        server_port: entry.port,
        password: entry.password,
        method: entry.method,
        plugin: "",
        plugin_opts: "",
      })
    ).join(",")
  }],
  "bytes_used": 1073741824,
  "bytes_remaining": 3221225472
}`;
}

Deno.test("a SIP008 URL drives the local: failover, refresh to a new list, last good list kept", async () => {
  await using http = startHttpFixture();
  const provider = startProvider();
  const servers: RunningService[] = [];
  const entries: Entry[] = [
    { method: "aes-256-gcm", password: "pass-one-AAAA" },
    { method: "chacha20-ietf-poly1305", password: "pass-two-BBBB" },
    { method: "2022-blake3-aes-128-gcm", password: "AAECAwQFBgcICQoLDA0ODw==" },
  ].map((e) => ({ ...e, port: 0 }));
  for (const entry of entries) {
    const server = await startServer(
      serverConfig(entry.method, { password: entry.password }),
      { graceMs: 0 },
    );
    servers.push(server);
    entry.port = server.addr.port;
  }
  provider.set(200, document(entries.slice(0, 2)));
  const dir = await Deno.makeTempDir();
  const localPort = freePort();
  await Deno.writeTextFile(
    `${dir}/local.json`,
    JSON.stringify({
      local_port: localPort,
      online_config: { config_url: provider.url, update_interval: 1 },
      balancer: { check_interval: 0.2, check_target: `127.0.0.1:${http.addr.port}` },
    }),
  );
  const local = spawnSsdeno(["local", "-c", `${dir}/local.json`]);
  const fetch = (path: string) => curlViaSocks(localPort, http.url(path));
  try {
    await waitFor(() => local.log().includes("listening on"), 10_000, "the local to listen");
    assert.match(
      local.log(),
      /online config from http:\/\/127\.0\.0\.1:\d+\/…: 2 servers, 1\.0 GiB used, 3\.0 GiB left/,
    );

    const first = await fetch("/blob?size=1000");
    assert.equal(first.code, 0, `${first.stderr}\n${local.log()}`);
    await waitFor(() => servers[0]!.stats.statuses.OK >= 1, 5000, "a session on the first");

    // The first server dies: sessions go to the second, no error seen by the application.
    await servers[0]!.close();
    for (let i = 0; i < 5; i++) {
      const result = await fetch("/blob?size=1000");
      assert.equal(result.code, 0, `${result.stderr}\n${local.log()}`);
    }
    await waitFor(() => servers[1]!.stats.statuses.OK >= 5, 5000, "sessions on the second");

    // The provider now lists only the third server (a 2022 one): the next refresh switches.
    provider.set(200, document([entries[2]!]));
    await waitFor(
      () => /servers changed: 1 added, 2 removed/.test(local.log()),
      10_000,
      "the refresh to the new list",
    );
    await servers[1]!.close();
    const third = await fetch("/blob?size=5000");
    assert.equal(third.code, 0, `${third.stderr}\n${local.log()}`);
    await waitFor(() => servers[2]!.stats.statuses.OK >= 1, 5000, "a session on the third");

    // A broken provider: the last good list stays, one warning per failed refresh.
    provider.set(500, "oops");
    await waitFor(() => /not updated \(keeping the last good list\): HTTP 500/.test(local.log()));
    provider.set(200, `{"version": 2, "servers": []}`);
    await waitFor(() => /"version" is 2, expected 1/.test(local.log()));
    const still = await fetch("/blob?size=5000");
    assert.equal(still.code, 0, `${still.stderr}\n${local.log()}`);

    const log = local.log();
    for (const secret of ["s3cr3t-token", ...entries.map((e) => e.password)]) {
      assert.ok(!log.includes(secret), `the log shows "${secret}":\n${log}`);
    }
  } finally {
    await local.close();
    for (const server of servers) await server.close();
    await provider.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a local whose online config cannot be fetched at start says why and exits 2", async () => {
  const provider = startProvider();
  provider.set(404, "");
  const local = spawnSsdeno(["local", "--server-url", provider.url, "-l", "0"]);
  try {
    const status = await local.status;
    assert.equal(status.code, 2);
    await local.close();
    assert.match(
      local.log(),
      /Cannot fetch the online config from http:\/\/127\.0\.0\.1:\d+\/…: HTTP 404/,
    );
    assert.ok(!local.log().includes("s3cr3t"), local.log());
  } finally {
    await local.close();
    await provider.close();
  }
});

Deno.test("a failed first fetch falls back to the config's own server until a refresh works", async () => {
  await using http = startHttpFixture();
  const provider = startProvider();
  const server = await startServer(serverConfig("aes-128-gcm", { password: "fallback" }), {
    graceMs: 0,
  });
  const localPort = freePort();
  const local = spawnSsdeno([
    "local",
    "--server-url",
    provider.url,
    "-s",
    "127.0.0.1",
    "-p",
    `${server.addr.port}`,
    "-m",
    "aes-128-gcm",
    "-k",
    "fallback",
    "-l",
    `${localPort}`,
  ]);
  try {
    await waitFor(() => local.log().includes("listening on"), 10_000, "the local to listen");
    assert.match(local.log(), /using the config's own servers until a refresh succeeds/);
    const result = await curlViaSocks(localPort, http.url("/blob?size=100"));
    assert.equal(result.code, 0, `${result.stderr}\n${local.log()}`);
  } finally {
    await local.close();
    await server.close();
    await provider.close();
  }
});
