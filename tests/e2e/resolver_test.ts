/**
 * The server's own resolver, as a libev user runs it: `ssdeno server -d 127.0.0.1:PORT` with
 * dnsmasq serving a test zone. A name only that server knows is reached through the tunnel;
 * a name it does not know ends as `ERR_RESOLVE`; repeated lookups come from the cache, which
 * the metrics show.
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { dnsmasqTest, startDnsmasq } from "../relay/_dnsmasq.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import { localConfig, waitFor } from "./_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";

dnsmasqTest(
  "ssdeno server -d resolves targets with that DNS server, cached, counted in metrics",
  async (_t, binary) => {
    await using http = startHttpFixture();
    await using dns = await startDnsmasq(binary, [
      "--host-record=only-here.test,127.0.0.1,300",
      "--local=/test/",
    ]);
    const port = freePort();
    const metrics = freePort();
    await using server = spawnSsdeno([
      "server",
      "-s",
      "127.0.0.1",
      "-p",
      `${port}`,
      "-k",
      "dns-test",
      "-m",
      "aes-128-gcm",
      "--allow-private-targets",
      "-d",
      `127.0.0.1:${dns.port}`,
      "--metrics",
      `127.0.0.1:${metrics}`,
    ]);
    await waitForTcpPort(port, { exited: server.status });
    assert.match(server.log(), /target names resolved by 127\.0\.0\.1:\d+ \(cached\)/);
    const local = await startLocal(localConfig("aes-128-gcm", port, { password: "dns-test" }), {
      graceMs: 0,
    });
    try {
      const url = `http://only-here.test:${http.addr.port}/blob?size=4096`;
      for (let i = 0; i < 3; i++) {
        const result = await curlViaSocks(local.addr.port, url);
        assert.equal(result.code, 0, `${result.stderr}\n${server.log()}\n${dns.output()}`);
      }
      const missing = await curlViaSocks(
        local.addr.port,
        `http://not-there.test:${http.addr.port}/`,
      );
      assert.notEqual(missing.code, 0);
      await waitFor(() => /not-there\.test.*ERR_RESOLVE/.test(server.log()), 5000, server.log());

      const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
      const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
      // Three lookups of one name: its A record asked once, then twice from the cache (its
      // AAAA NODATA carries no SOA here, so it is asked each time, RFC 2308); two for the other.
      assert.equal(value(/^ssdeno_dns_cache_total\{result="hit"\} (\d+)$/m), 2, text);
      assert.equal(value(/^ssdeno_dns_queries_total (\d+)$/m), 1 + 3 + 2, text);
      assert.ok(value(/^ssdeno_dns_errors_total\{reason="nxdomain"\} (\d+)$/m) >= 1, text);
    } finally {
      await local.close();
    }
  },
);
