/**
 * Routing end to end (issue 10): a local's ACL sends bypassed targets direct, the rest through
 * the server, and refuses blocked ones with each inbound's own error; a server's ACL blocks
 * targets and clients; several servers fail over inside one session and come back.
 */
import assert from "node:assert/strict";
import { buildLocalConfig } from "../../config/load.ts";
import type { LocalConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { parseAcl } from "../../protocol/acl.ts";
import { Reply } from "../../protocol/socks5.ts";
import { createLogger } from "../../relay/log.ts";
import { processQuarantine } from "../../relay/port_quarantine.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, deterministicBytes, startHttpFixture } from "../_fixtures.ts";
import { datagramBytes, SocksUdpClient, UdpEcho } from "./_udp_harness.ts";
import {
  localConfig,
  readAll,
  serverConfig,
  socksConnect,
  startChain,
  waitFor,
} from "./_harness.ts";

const METHOD = "aes-128-gcm";

Deno.test("a local ACL: bypassed targets go direct, proxied through the server, blocked refused", async () => {
  await using proxied = startHttpFixture("127.0.0.1");
  await using bypassed = startHttpFixture("127.0.0.2");
  const acl = parseAcl(
    "[proxy_all]\n[bypass_list]\n127.0.0.2\n[outbound_block_list]\n127.0.0.3\n(^|\\.)blocked\\.test$\n",
  );
  const chain = await startChain(METHOD, { local: { acl } });
  const port = chain.local.addr.port;
  try {
    const viaServer = await curlViaSocks(port, proxied.url("/blob?size=100"));
    assert.equal(viaServer.code, 0, viaServer.stderr);
    const direct = await curlViaSocks(port, bypassed.url("/blob?size=200"));
    assert.equal(direct.code, 0, direct.stderr);
    assert.deepEqual(direct.stdout, deterministicBytes(200));
    await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "the proxied session");
    await waitFor(() => chain.local.stats.statuses.OK === 2, 5000, "both local sessions");
    assert.equal(bypassed.requests.get("/blob"), 1);

    // Blocked by IP and by name: SOCKS5 REP 0x02, HTTP 403, SOCKS4 0x5B; nothing dialled.
    const { conn, reply } = await socksConnect(port, { type: "ipv4", host: "127.0.0.3", port: 80 });
    conn.close();
    assert.equal(reply, Reply.notAllowed);
    const byName = await curlViaSocks(port, "http://www.blocked.test/", {
      proxyArgs: ["-x", `http://127.0.0.1:${port}`],
      extraArgs: ["-o", "/dev/null", "-w", "%{http_code}"],
    });
    assert.equal(new TextDecoder().decode(byName.stdout), "403");
    await waitFor(() => chain.local.stats.statuses.ERR_BLOCKED === 2, 5000, "two blocked");
    assert.equal(chain.server.stats.statuses.OK, 1, "nothing more reached the server");
  } finally {
    await chain.close();
  }
});

Deno.test("the acl key reads a libev/rust ACL file, and its warnings name the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/rules.acl`, "[bypass_all]\n[proxy_list]\n1.2.3.0/24 # note\n");
    const { config, warnings } = buildLocalConfig({
      server: "127.0.0.1",
      server_port: 1,
      password: "p",
      acl: `${dir}/rules.acl`,
    });
    assert.equal(config.acl?.mode, "WhiteList");
    assert.ok(warnings.some((w) => w.includes(`${dir}/rules.acl`)), warnings.join("\n"));
    assert.throws(
      () => buildLocalConfig({ server: "h", password: "p", acl: `${dir}/missing.acl` }),
      /Cannot read acl/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server ACL blocks outbound targets and refuses clients", async () => {
  await using target = startHttpFixture("127.0.0.1");
  await using blocked = startHttpFixture("127.0.0.2");
  const chain = await startChain(METHOD, {
    server: { acl: parseAcl("[outbound_block_list]\n127.0.0.2\n") },
  });
  try {
    const ok = await curlViaSocks(chain.local.addr.port, target.url("/blob?size=10"));
    assert.equal(ok.code, 0, ok.stderr);
    const refused = await curlViaSocks(chain.local.addr.port, blocked.url("/blob?size=10"), {
      maxTimeSeconds: 5,
    });
    assert.notEqual(refused.code, 0);
    await waitFor(() => chain.server.stats.statuses.ERR_BLOCKED === 1, 5000, "blocked target");
    assert.equal(blocked.requests.size, 0);
  } finally {
    await chain.close();
  }

  // [reject_all] with only 127.0.0.5 white-listed: our client at 127.0.0.1 is closed at accept.
  const server = await startServer(
    serverConfig(METHOD, { acl: parseAcl("[reject_all]\n[white_list]\n127.0.0.5\n") }),
    { graceMs: 0 },
  );
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new Uint8Array(64)).catch(() => 0);
    assert.equal((await readAll(conn).catch(() => new Uint8Array())).length, 0);
    conn.close();
    await waitFor(() => server.stats.statuses.ERR_BLOCKED === 1, 5000, "blocked client");
  } finally {
    await server.close();
  }
});

Deno.test("three servers: the first dies mid-run, 200 sessions all succeed, and it comes back", async () => {
  await using http = startHttpFixture();
  const servers: RunningService[] = [];
  for (let i = 0; i < 3; i++) servers.push(await startServer(serverConfig(METHOD), { graceMs: 0 }));
  const ports = servers.map((s) => s.addr.port);
  const lines: string[] = [];
  const config: LocalConfig = {
    ...localConfig(METHOD, ports[0]!),
    servers: ports.map((port) => ({
      server: "127.0.0.1",
      serverPort: port,
      method: METHOD,
      password: "e2e-password",
    })),
    balancer: { checkIntervalS: 0.2, checkTarget: `127.0.0.1:${http.addr.port}` },
  };
  const local = await startLocal(config, {
    graceMs: 0,
    logger: createLogger("info", (line) => lines.push(line)),
  });
  try {
    let ok = 0;
    for (let i = 0; i < 200; i++) {
      if (i === 50) {
        // The first server is the primary while it is as fast as the others: it took them all
        // (its count also has the health checks' requests).
        assert.ok(servers[0]!.stats.statuses.OK >= 50, `${servers[0]!.stats.statuses.OK}`);
        await servers[0]!.close();
      }
      const result = await curlViaSocks(local.addr.port, http.url("/blob?size=64"));
      assert.equal(result.code, 0, `session ${i}: ${result.stderr}\n${lines.join("\n")}`);
      ok++;
    }
    assert.equal(ok, 200);
    assert.ok(lines.some((line) => line.includes(`server 127.0.0.1:${ports[0]} is down`)));
    await waitFor(() => local.stats.statuses.OK === 200, 5000, "200 OK sessions on the local");
    assert.ok(servers[1]!.stats.statuses.OK + servers[2]!.stats.statuses.OK >= 150);

    // The first server comes back on its port; the other two go away: sessions use it again.
    servers[0] = await startServer(serverConfig(METHOD, { port: ports[0]! }), { graceMs: 0 });
    await waitFor(
      () => lines.some((line) => line.includes(`server 127.0.0.1:${ports[0]} is back up`)),
      5000,
      "the first server back up",
    );
    await servers[1]!.close();
    await servers[2]!.close();
    for (let i = 0; i < 10; i++) {
      const result = await curlViaSocks(local.addr.port, http.url("/blob?size=64"));
      assert.equal(result.code, 0, result.stderr);
    }
    await waitFor(() => servers[0]!.stats.statuses.OK >= 10, 5000, "sessions on the returned one");
  } finally {
    await local.close();
    for (const server of servers) await server.close();
  }
});

Deno.test("UDP follows the ACL per datagram: bypass direct, proxy via the server, block dropped", async () => {
  const proxiedEcho = new UdpEcho({ hostname: "127.0.0.1" });
  const bypassedEcho = new UdpEcho({ hostname: "127.0.0.2" });
  const acl = parseAcl("[proxy_all]\n[bypass_list]\n127.0.0.2\n[outbound_block_list]\n127.0.0.3\n");
  const udp = { mode: "tcp_and_udp", udpMaxAssociations: 16 } as const;
  // Every UDP socket of the chain is bound outside the process's port quarantine: note the
  // ports it is asked about (relay/port_quarantine.ts, bindOutside).
  const asked = new Set<number>();
  const has = processQuarantine.has;
  processQuarantine.has = (port: number) => {
    asked.add(port);
    return has.call(processQuarantine, port);
  };
  const chain = await startChain(METHOD, { local: { ...udp, acl }, server: udp });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  try {
    const exchange = async (host: string, port: number, size: number) => {
      const payload = datagramBytes(size, size);
      await client.send({ type: "ipv4", host, port }, payload);
      const reply = await client.next(2000);
      assert.deepEqual(reply.address, { type: "ipv4", host, port });
      assert.deepEqual(reply.payload, payload);
    };
    await exchange("127.0.0.1", proxiedEcho.port, 100);
    await exchange("127.0.0.2", bypassedEcho.port, 200);
    await client.send({ type: "ipv4", host: "127.0.0.3", port: 9 }, datagramBytes(5, 1));
    await waitFor(() => chain.local.udpStats!.statuses.ERR_BLOCKED === 1, 5000, "blocked");
    assert.equal(chain.server.udpStats!.statuses.OK, 1, "only the proxied datagram reached it");
    assert.equal(bypassedEcho.echoed, 1);
    // The local's app-side socket, its direct socket (the bypassed echo's source) and the
    // server's outbound socket (the proxied echo's source) were checked, and one more: the
    // local's socket towards the server.
    const known = [client.relay.port, bypassedEcho.sources[0]!, proxiedEcho.sources[0]!];
    for (const port of known) assert.ok(asked.has(port), `port ${port} checked`);
    assert.ok(asked.size >= 4, `the local's server-side socket checked too (${[...asked]})`);
  } finally {
    processQuarantine.has = has;
    await client.close();
    await chain.close();
    await proxiedEcho.close();
    await bypassedEcho.close();
  }
});

Deno.test("a server ACL drops UDP datagrams to blocked targets", async () => {
  const echo = new UdpEcho({ hostname: "127.0.0.2" });
  const udp = { mode: "tcp_and_udp", udpMaxAssociations: 16 } as const;
  const chain = await startChain(METHOD, {
    local: udp,
    server: { ...udp, acl: parseAcl("[outbound_block_list]\n127.0.0.2\n") },
  });
  const client = await SocksUdpClient.open(chain.local.addr.port);
  try {
    await client.send({ type: "ipv4", host: "127.0.0.2", port: echo.port }, datagramBytes(9, 9));
    await waitFor(() => chain.server.udpStats!.statuses.ERR_BLOCKED === 1, 5000, "blocked");
    assert.equal(echo.echoed, 0);
  } finally {
    await client.close();
    await chain.close();
    await echo.close();
  }
});
