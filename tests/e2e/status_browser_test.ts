/**
 * The status page (issue 16) in headless Chromium, driven by playwright-core: a real server with
 * a 2022 multi-user listener, our local, curl moving bytes through them, the management API on the
 * same listener as the page, and the page checked through what it shows: live numbers and chart
 * data while the transfer runs, a user added through the API appearing, keyboard sorting,
 * probes counted, the token off loopback, and upstream health on a local's page.
 *
 * Needs Debian's `chromium` and `curl` (skipped without them unless CI=true). One browser for
 * every step. With `SSDENO_STATUS_SCREENSHOT=docs/status.png` the traffic step also saves a
 * screenshot of the page there.
 */
import assert from "node:assert/strict";
// Test-only packages are named here, not in deno.json's imports, so `deno compile` does not
// embed them in the binary (deno.lock pins them all the same).
import axeSource from "npm:axe-core@4.14.1/axe.min.js" with { type: "text" };
import { chromium, type ConsoleMessage, type Page } from "npm:playwright-core@1.65.1";
import { startLocal, startUpstreams } from "../../local.ts";
import { silentLogger } from "../../relay/log.ts";
import { startServer, updatableInPlace } from "../../server.ts";
import { apiHandler } from "../../service/api.ts";
import { renderMetrics } from "../../service/metrics.ts";
import { startStatusServer } from "../../service/status.ts";
import { ServerSupervisor } from "../../service/supervisor.ts";
import { curlViaSocks, deterministicBytes, startHttpFixture } from "../_fixtures.ts";
import { freePort, peerTest } from "../interop/_peers.ts";
import { localConfig, serverConfig } from "./_harness.ts";
import { randomPsk } from "./_udp_harness.ts";

const METHOD = "2022-blake3-aes-128-gcm";
/** Every wait in the browser gives up after this long. */
const WAIT_MS = 15_000;
/** Bytes uploaded at `RATE` bytes a second: a transfer of about three seconds. */
const UPLOAD = 3_000_000;
const RATE = "1M";

/** axe-core in the page, as far as the tests use it. */
declare const axe: {
  run(context: unknown, options: unknown): Promise<{
    violations: Array<{ id: string; help: string; nodes: Array<{ target: string[] }> }>;
  }>;
};
declare const document: unknown;

/** The page's state object (`window.ssdenoStatus`), as far as the tests read it. */
declare const ssdenoStatus: {
  updates: number;
  samples: Array<{ up: number; down: number; outcomes: number[] }>;
  snapshot: { users: Array<{ key: string; name: string | null; down: number }> };
  charts: { throughput: { data: number[][] }; outcomes: { data: number[][] } };
};

peerTest({
  name: "the status page shows live traffic, users, outcomes and upstreams in Chromium",
  peers: ["chromium", "curl"],
  async fn(t, paths) {
    const ipsk = randomPsk(16);
    const keys = { alice: randomPsk(16), bob: randomPsk(16), carol: randomPsk(16) };
    const supervisor = new ServerSupervisor({
      start: (c) => startServer(c, { graceMs: 0 }),
      canUpdate: updatableInPlace,
      logger: silentLogger,
    });
    const cleanup: Array<() => Promise<unknown> | unknown> = [];
    const browser = await chromium.launch({
      executablePath: paths.chromium,
      // Chromium's sandbox cannot start as root (CI runs as root); the page is our own.
      args: ["--no-sandbox"],
      timeout: WAIT_MS,
    });
    cleanup.push(() => browser.close());
    try {
      await supervisor.startAll([serverConfig(METHOD, {
        password: ipsk,
        users: [
          { name: "alice", password: keys.alice, dataLimit: 20_000_000 },
          { name: "bob", password: keys.bob },
        ],
        handshakeTimeout: 1,
      })]);
      cleanup.push(() => supervisor.closeAll());
      const serverPort = supervisor.listeners[0]!.service.addr.port;
      const local = await startLocal(
        localConfig(METHOD, serverPort, { password: `${ipsk}:${keys.alice}` }),
        { graceMs: 0 },
      );
      cleanup.push(() => local.close());
      const http = startHttpFixture();
      cleanup.push(() => http.close());
      // The page, the metrics and the management API on one listener.
      const status = startStatusServer({
        hostname: "127.0.0.1",
        port: 0,
        sources: { role: "server", listeners: () => supervisor.listeners },
        version: "test",
        metrics: () =>
          renderMetrics(
            supervisor.listeners.map(({ config, service }) => ({
              port: service.addr.port,
              users: config.users?.map((u) => u.name) ?? [],
              service,
            })),
            "test",
          ),
        fallback: apiHandler({ supervisor, version: "test" }),
      });
      cleanup.push(() => status.close());

      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors = watchErrors(page);
      await page.goto(status.url, { timeout: WAIT_MS });
      await waitFor(page, () => ssdenoStatus.updates >= 1);

      await t.step("the graph and the numbers move while a transfer runs", async () => {
        // An upload paced by curl, so the server sees it arrive over about three seconds (a
        // download would land in the socket buffers of the chain at once), then its echo.
        const transfer = curlViaSocks(local.addr.port, http.url("/echo"), {
          body: deterministicBytes(UPLOAD),
          extraArgs: ["--limit-rate", RATE, "-o", "/dev/null"],
        });
        // Seen while curl is still sending: a one-second sample with bytes going up.
        await waitFor(page, () => (ssdenoStatus.samples.at(-1)?.up ?? 0) > 50_000);
        assert.match((await page.textContent("#rate-up"))!, /[kM]B\/s$/);
        const result = await transfer;
        assert.equal(result.code, 0, result.stderr);
        await waitFor(page, () => {
          const alice = ssdenoStatus.snapshot.users.find((u) => u.name === "alice");
          return alice !== undefined && alice.down >= 3_000_000;
        });
        const chart = await page.evaluate(() => ssdenoStatus.charts.throughput.data);
        const ups = chart[2]!.filter((v) => v > 0);
        assert.ok(ups.length >= 2, `upload rates in the chart: ${ups}`);
        assert.ok(chart[1]!.some((v) => v > 0), "a download rate in the chart");
        assert.match(await cellText(page, "alice", 4), /^3\.\d\d MB$/);
        assert.match(await cellText(page, "alice", 5), /^3\.\d\d MB$/);
        assert.match(await cellText(page, "alice", 8), /^3\d % of 20\.0 MB$/);
      });

      await t.step("probes show as probes", async () => {
        // Junk that cannot authenticate: the server drains it and counts ERR_CIPHER.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
        await conn.write(crypto.getRandomValues(new Uint8Array(80)));
        conn.close();
        await waitFor(page, () => ssdenoStatus.samples.some((s) => s.outcomes[1]! > 0));
        const statuses = await page.textContent("#statuses tbody");
        assert.match(statuses!, /ERR_CIPHER\s*Probes\s*1/);
      });

      const screenshot = Deno.env.get("SSDENO_STATUS_SCREENSHOT");
      if (screenshot) {
        await t.step("a screenshot with traffic flowing", async () => {
          const bob = await startLocal(
            localConfig(METHOD, serverPort, { password: `${ipsk}:${keys.bob}` }),
            { graceMs: 0 },
          );
          cleanup.push(() => bob.close());
          const send = (port: number, size: number, rate: string) =>
            curlViaSocks(port, http.url("/echo"), {
              body: deterministicBytes(size),
              extraArgs: ["--limit-rate", rate, "-o", "/dev/null"],
            });
          const transfers = [
            send(local.addr.port, 6_000_000, "600k"),
            send(bob.addr.port, 3_000_000, "300k"),
          ];
          // A probe every other second while the uploads run, then the picture.
          const start = await page.evaluate(() => ssdenoStatus.updates);
          for (let i = 1; i <= 4; i++) {
            await waitForUpdates(page, start + 2 * i);
            const conn = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
            await conn.write(crypto.getRandomValues(new Uint8Array(40 + i * 10)));
            conn.close();
          }
          await waitForUpdates(page, start + 9);
          await page.screenshot({ path: screenshot, fullPage: true, timeout: WAIT_MS });
          console.log(`status page screenshot saved to ${screenshot}`);
          for (const result of await Promise.all(transfers)) assert.equal(result.code, 0);
        });
      }

      await t.step("a user added through the API appears in the table", async () => {
        const response = await fetch(`http://127.0.0.1:${status.addr.port}/users`, {
          method: "POST",
          body: JSON.stringify({ username: "carol", uPSK: keys.carol }),
        });
        assert.equal(response.status, 201);
        await response.body?.cancel();
        await page.waitForSelector('#users-table tbody tr[data-key$="/carol"]', {
          timeout: WAIT_MS,
        });
        const options = await page.$$eval(
          "#throughput-user option",
          (all) => all.map((o) => o.textContent),
        );
        assert.ok(options.includes("carol"), String(options));
      });

      await t.step("the user table sorts from the keyboard", async () => {
        await page.focus('#users-table button[data-sort="name"]');
        await page.keyboard.press("Enter");
        assert.equal(await sortOf(page, "name"), "ascending");
        assert.deepEqual(await userNames(page), ["alice", "bob", "carol"]);
        await page.keyboard.press("Space");
        assert.equal(await sortOf(page, "name"), "descending");
        assert.deepEqual(await userNames(page), ["carol", "bob", "alice"]);
        await page.keyboard.press("Tab");
        await page.keyboard.press("Enter");
        assert.equal(await sortOf(page, "listener"), "ascending");
        assert.equal(await sortOf(page, "name"), null);
      });

      await t.step("axe finds no WCAG 2 A/AA violation", async () => {
        // axe is injected as an inline script, which the page's CSP forbids: a page of its own
        // in a context that ignores the CSP (the main page above keeps it).
        const context = await browser.newContext({ bypassCSP: true });
        const audited = await context.newPage();
        await audited.goto(status.url, { timeout: WAIT_MS });
        await waitFor(audited, () => ssdenoStatus.updates >= 2);
        await audited.addScriptTag({ content: axeSource });
        const violations = await audited.evaluate(async () => {
          const results = await axe.run(document, {
            runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
          });
          return results.violations.map((v) =>
            `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`
          );
        });
        await context.close();
        assert.deepEqual(violations, []);
      });

      await t.step("the page fits a phone's width", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await waitFor(page, () => {
          const charts = ssdenoStatus.charts as unknown as Record<string, { width: number }>;
          return charts.throughput!.width <= 390;
        });
        const overflow = await page.evaluate(
          "document.documentElement.scrollWidth - document.documentElement.clientWidth",
        );
        assert.equal(overflow, 0);
      });

      assert.deepEqual(errors, [], "console errors on the page");
      await page.close();

      await t.step("off loopback the token is required, then kept in a cookie", async () => {
        const guarded = startStatusServer({
          hostname: "0.0.0.0",
          port: 0,
          token: "s3cret token",
          sources: { role: "server", listeners: () => supervisor.listeners },
          version: "test",
        });
        cleanup.push(() => guarded.close());
        const base = `http://127.0.0.1:${guarded.addr.port}/status/`;
        const other = await browser.newPage();
        // The refusal itself, and the favicon Chromium asks for to show the bare 401 answer.
        const otherErrors = watchErrors(
          other,
          (text, url) => (url === base && / 401 /.test(text)) || url.endsWith("/favicon.ico"),
        );
        const refused = await other.goto(base, { timeout: WAIT_MS });
        assert.equal(refused?.status(), 401);
        const opened = await other.goto(`${base}?token=${encodeURIComponent("s3cret token")}`, {
          timeout: WAIT_MS,
        });
        assert.equal(opened?.status(), 200);
        assert.equal(other.url(), base, "the token is gone from the address bar");
        // The event stream gets in with the cookie.
        await waitFor(other, () => ssdenoStatus.updates >= 2);
        assert.equal(await other.textContent("#connection"), "Live");
        assert.deepEqual(otherErrors, []);
        await other.close();
        await guarded.close();
      });

      await t.step("a local's page shows each upstream server's health", async () => {
        const deadPort = freePort();
        const config = localConfig(METHOD, serverPort, {
          servers: [
            { server: "127.0.0.1", serverPort, method: METHOD, password: `${ipsk}:${keys.bob}` },
            { server: "127.0.0.1", serverPort: deadPort, method: METHOD, password: ipsk },
          ],
          balancer: { checkIntervalS: 30, checkTarget: `127.0.0.1:${http.addr.port}` },
        });
        const upstreams = startUpstreams(config, silentLogger, "local");
        cleanup.push(() => upstreams.close());
        await upstreams.balancer.checkAll();
        const localStatus = startStatusServer({
          hostname: "127.0.0.1",
          port: 0,
          sources: {
            role: "local",
            listeners: () => [{
              config: { address: "127.0.0.1", port: 0, method: METHOD, mode: "tcp_only" },
              service: local,
            }],
            upstreams: () => upstreams.balancer.servers,
          },
          version: "test",
        });
        cleanup.push(() => localStatus.close());
        const other = await browser.newPage();
        const otherErrors = watchErrors(other);
        await other.goto(localStatus.url, { timeout: WAIT_MS });
        await waitFor(other, () => ssdenoStatus.updates >= 1);
        assert.equal(await other.isVisible("#upstreams"), true);
        const rows = await other.$$eval(
          "#upstreams tbody tr",
          (all) =>
            all.map((row) =>
              Array.from(row.children, (cell: { textContent: string | null }) => cell.textContent)
            ),
        );
        assert.deepEqual(rows.map((row) => row[1]), ["up", "down"]);
        assert.match(rows[0]![2]!, /^\d+ ms$/);
        assert.notEqual(rows[1]![3], "");
        assert.deepEqual(otherErrors, []);
        await other.close();
      });
    } finally {
      for (const step of cleanup.reverse()) await step();
    }
  },
});

/**
 * Collects the page's console errors and uncaught exceptions, except those `expected` says are
 * (given the message's text and the address it is about).
 */
function watchErrors(page: Page, expected?: (text: string, url: string) => boolean): string[] {
  const errors: string[] = [];
  page.on("console", (message: ConsoleMessage) => {
    if (message.type() !== "error") return;
    if (expected?.(message.text(), message.location().url)) return;
    errors.push(`${message.text()} (${message.location().url})`);
  });
  page.on("pageerror", (error: Error) => errors.push(error.message));
  return errors;
}

/** Waits until `condition` holds in the page (polled each animation frame, `WAIT_MS` at most). */
async function waitFor(page: Page, condition: () => boolean): Promise<void> {
  await page.waitForFunction(condition, undefined, { timeout: WAIT_MS });
}

/** Waits until the page has taken `count` snapshots (`WAIT_MS` at most). */
async function waitForUpdates(page: Page, count: number): Promise<void> {
  await page.waitForFunction((n) => ssdenoStatus.updates >= n, count, { timeout: WAIT_MS });
}

/** The text of cell `column` (0: the name) of `user`'s row. */
async function cellText(page: Page, user: string, column: number): Promise<string> {
  const text = await page.$eval(
    `#users-table tbody tr[data-key$="/${user}"]`,
    (row, i) => row.children[i]?.textContent ?? "",
    column,
  );
  return text.trim();
}

async function sortOf(page: Page, key: string): Promise<string | null> {
  return await page.$eval(
    `#users-table button[data-sort="${key}"]`,
    (button) => button.parentElement!.getAttribute("aria-sort"),
  );
}

async function userNames(page: Page): Promise<string[]> {
  return await page.$$eval("#users-table tbody th", (all) => all.map((th) => th.textContent!));
}
