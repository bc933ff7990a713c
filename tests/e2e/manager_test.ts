/**
 * The ss-manager API (issue 11): its parser on libev's documented command strings and on bad
 * input; `ssdeno server --manager-address` in a subprocess driven by a UDP controller, with
 * libev's ss-local carrying traffic through a port the API added; the periodic stat push.
 */
import assert from "node:assert/strict";
import type { ServerConfig } from "../../config/types.ts";
import { parseManagerCommand } from "../../protocol/manager.ts";
import { silentLogger } from "../../relay/log.ts";
import { startServer, updatableInPlace } from "../../server.ts";
import { startManager } from "../../service/manager.ts";
import { ServerSupervisor } from "../../service/supervisor.ts";
import { loadVectors } from "../_vectors.ts";
import { curlViaSocks, deterministicBytes, startHttpFixture } from "../_fixtures.ts";
import { freePort, peerTest, startSsLocal } from "../interop/_peers.ts";
import { UdpPeer } from "./_udp_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";
import { serverConfig, waitFor } from "./_harness.ts";

Deno.test("the manager parser reads the documented commands of libev and the Python original", async () => {
  const { examples } = await loadVectors("ss_manager_examples.json");
  for (const example of examples) {
    if (example.direction !== "controller->manager") continue;
    const command = parseManagerCommand(example.datagram);
    assert.ok(["add", "remove", "ping", "list"].includes(command.command), example.datagram);
  }
  assert.deepEqual(parseManagerCommand('add: {"server_port": "8001", "password": "p"}'), {
    command: "add",
    request: { server_port: 8001, password: "p" },
  });
  assert.deepEqual(parseManagerCommand('remove: {"server_port": 8001}'), {
    command: "remove",
    port: 8001,
  });
});

Deno.test("bad manager commands get an error reply naming the problem", () => {
  const bad: [string, RegExp][] = [
    ["add: {bad", /invalid JSON/],
    ["add: []", /needs a JSON object/],
    ['add: {"server_port": "x", "password": "p"}', /server_port/],
    ['add: {"server_port": 70000, "password": "p"}', /server_port/],
    ['add: {"server_port": 8001}', /password/],
    ['add: {"server_port": 8001, "password": "p", "evil": 1}', /unknown key "evil"/],
    ['add: {"server_port": 8001, "password": "p", "method": 5}', /method must be a string/],
    ['add: {"server_port": 8001, "password": "p", "users": [1]}', /users must be/],
    ["ping: {}", /takes no argument/],
    ["launch missiles", /unknown command/],
    ["x".repeat(5000), /too long/],
    ["", /unknown command/],
  ];
  for (const [text, reply] of bad) {
    assert.throws(() => parseManagerCommand(text), reply, text.slice(0, 40));
  }
});

Deno.test("the manager pushes stat lines to the last controller", async () => {
  const supervisor = new ServerSupervisor({
    start: (config) => startServer(config, { graceMs: 0 }),
    canUpdate: updatableInPlace,
    logger: silentLogger,
  });
  const manager = startManager({
    hostname: "127.0.0.1",
    port: 0,
    supervisor,
    buildConfig: (request): ServerConfig =>
      serverConfig("aes-128-gcm", { port: request.server_port, password: request.password }),
    logger: silentLogger,
    statIntervalMs: 50,
  });
  const controller = new UdpPeer();
  try {
    const port = freePort();
    const add = `add: {"server_port": ${port}, "password": "pushed"}`;
    await controller.send(new TextEncoder().encode(add), manager.addr.port);
    assert.equal(new TextDecoder().decode((await controller.next()).data), "ok");
    const pushed = new TextDecoder().decode((await controller.next()).data);
    assert.equal(pushed, `stat: {"${port}":0}`);
  } finally {
    await controller.close();
    await manager.close();
    await supervisor.closeAll();
  }
});

peerTest({
  name:
    "ssdeno server --manager-address: libev's commands add a port libev ss-local relays through",
  peers: ["ss-local", "curl"],
  async fn() {
    await using http = startHttpFixture();
    const managerPort = freePort();
    const child = spawnSsdeno([
      ...["server", "--manager-address", `127.0.0.1:${managerPort}`, "-s", "127.0.0.1"],
      ...["-m", "aes-256-gcm", "--allow-private-targets"],
    ]);
    const log = child.log;
    const controller = new UdpPeer();
    const ask = async (text: string) => {
      await controller.send(new TextEncoder().encode(text), managerPort);
      return new TextDecoder().decode((await controller.next(5000)).data);
    };
    try {
      await waitFor(() => log().includes("manager listening"), 20_000, "the manager");
      const port = freePort();
      // libev's documented add, with the manager's default method (-m).
      assert.equal(await ask(`add: {"server_port": ${port}, "password":"7cd308cc059"}`), "ok");
      {
        await using local = await startSsLocal(port, {
          method: "aes-256-gcm",
          password: "7cd308cc059",
        });
        const result = await curlViaSocks(local.port, http.url("/blob?size=50000"));
        assert.equal(result.code, 0, `${result.stderr}\n${log()}`);
        assert.deepEqual(result.stdout, deterministicBytes(50_000));
      }
      const stat = JSON.parse((await ask("ping")).replace(/^stat: /, ""));
      assert.ok(stat[`${port}`] > 50_000, JSON.stringify(stat));
      const list = JSON.parse(await ask("list"));
      assert.deepEqual(list.map((l: { server_port: number }) => l.server_port), [port]);

      // Bad input changes nothing and gets an answer; so does a flood of pings.
      assert.match(await ask("add: {bad"), /^err: add: invalid JSON/);
      assert.match(
        await ask(`add: {"server_port": ${port}, "password": "x", "method": "rot13"}`),
        /^err: .*rot13/,
      );
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      assert.equal(
        await ask(`add: {"server_port": ${taken.addr.port}, "password": "x"}`),
        "port is not available",
      );
      taken.close();
      for (let i = 0; i < 200; i++) {
        await controller.send(new TextEncoder().encode("ping"), managerPort);
      }
      for (let i = 0; i < 200; i++) {
        assert.match(new TextDecoder().decode((await controller.next()).data), /^stat: /);
      }
      assert.deepEqual(JSON.parse(await ask("list")).length, 1);

      assert.equal(await ask(`remove: {"server_port": ${port}}`), "ok");
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        Deno.errors.ConnectionRefused,
      );
      assert.equal(await ask("list"), "[]");
    } finally {
      await controller.close();
      child.kill("SIGTERM");
      await child.close();
    }
  },
});
