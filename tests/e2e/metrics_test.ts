/**
 * Prometheus metrics (issue 11): the exposition after real traffic has Outline's families with
 * the right values, `promtool check metrics` accepts it, and a real Prometheus scrapes it.
 */
import assert from "node:assert/strict";
import { renderMetrics, startMetricsServer } from "../../service/metrics.ts";
import { readProcessSample } from "../../service/process_sample.ts";
import { curlViaSocks, startHttpFixture } from "../_fixtures.ts";
import { findPeer, freePort, waitForTcpPort } from "../interop/_peers.ts";
import { isCi } from "../interop/_peers.ts";
import { startChain, waitFor } from "./_harness.ts";

const promtool = findPeer("promtool");
const prometheus = findPeer("prometheus");

async function withTraffic(fn: (text: () => string) => Promise<void>) {
  await using http = startHttpFixture();
  const chain = await startChain("aes-128-gcm");
  try {
    for (let i = 0; i < 3; i++) {
      const result = await curlViaSocks(chain.local.addr.port, http.url("/blob?size=10000"));
      assert.equal(result.code, 0, result.stderr);
    }
    await waitFor(() => chain.server.stats.statuses.OK === 3, 5000, "three sessions");
    const sources = [{ port: chain.server.addr.port, users: [], service: chain.server }];
    await fn(() => renderMetrics(sources, "9.9.9", undefined, undefined, readProcessSample(1)));
  } finally {
    await chain.close();
  }
}

Deno.test("the exposition has Outline's families with the relayed bytes and session counts", async () => {
  await withTraffic((text) => {
    const metrics = text();
    assert.match(metrics, /^shadowsocks_build_info\{version="9\.9\.9"\} 1$/m);
    assert.match(metrics, /^# TYPE shadowsocks_data_bytes counter$/m);
    const down = /^shadowsocks_data_bytes\{proto="tcp",dir="p<t",access_key="\d+"\} (\d+)$/m
      .exec(metrics);
    // Three responses of 10 000 bytes plus their HTTP heads.
    assert.ok(down && Number(down[1]) > 30_000 && Number(down[1]) < 31_000, metrics);
    assert.match(metrics, /^shadowsocks_tcp_connections_closed\{status="OK"\} 3$/m);
    assert.match(metrics, /^shadowsocks_tcp_connections_opened 3$/m);
    // Three client salts and three of the server's own.
    assert.match(metrics, /^ssdeno_replay_salts 6$/m);
    assert.doesNotMatch(metrics, /^shadowsocks_\w+_total[ {]/m, "Outline counters: no _total");
    // The process: this test's own, which has run a chain and curl.
    const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    assert.ok(sample("process_cpu_seconds_total") > 0, metrics);
    assert.ok(sample("process_resident_memory_bytes") > 10 * 2 ** 20, metrics);
    const started = sample("process_start_time_seconds");
    assert.ok(started <= Date.now() / 1000 && started > Date.now() / 1000 - 3600, metrics);
    return Promise.resolve();
  });
});

Deno.test({
  name: "promtool check metrics accepts the exposition",
  ignore: promtool === undefined && !isCi(),
  async fn() {
    assert.ok(promtool, "promtool is missing: apt-get install -y prometheus");
    await withTraffic(async (text) => {
      const child = new Deno.Command(promtool, {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text()));
      await writer.close();
      const { stdout, stderr } = await child.output();
      const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
      // promtool parses the whole text; its only remarks may be the lint on Outline's counter
      // names, which have no _total suffix and keep it for Outline's dashboards and queries.
      const remarks = said.split("\n").filter((line) => line.trim() !== "");
      const outline = /^shadowsocks_[a-z_]+ counter metrics should have "_total" suffix$/;
      assert.deepEqual(remarks.filter((line) => !outline.test(line)), [], said);
      assert.ok(remarks.length > 0, "the lint ran (Outline's names draw its remark)");
    });
  },
});

Deno.test({
  name: "a real Prometheus scrapes /metrics and answers a query on the relayed bytes",
  ignore: prometheus === undefined && !isCi(),
  async fn() {
    assert.ok(prometheus, "prometheus is missing: apt-get install -y prometheus");
    await withTraffic(async (text) => {
      const metrics = startMetricsServer("127.0.0.1", 0, text);
      const dir = await Deno.makeTempDir({ prefix: "ssdeno-prometheus-" });
      const port = freePort();
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ssdeno\n` +
          `    static_configs:\n      - targets: ["127.0.0.1:${metrics.addr.port}"]\n`,
      );
      const child = new Deno.Command(prometheus, {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await waitForTcpPort(port, { exited: child.status, attempts: 200 });
        const query = encodeURIComponent('sum(shadowsocks_data_bytes{dir="p<t"})');
        let value = 0;
        for (let attempt = 0; attempt < 100 && value === 0; attempt++) {
          const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${query}`);
          // While its storage starts, Prometheus answers 503 "Service Unavailable": not yet.
          if (response.ok) {
            const body = await response.json();
            value = Number(body?.data?.result?.[0]?.value?.[1] ?? 0);
          } else {
            await response.body?.cancel();
          }
          if (value === 0) await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.ok(value > 30_000, `Prometheus saw ${value} bytes`);
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await metrics.close();
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});
