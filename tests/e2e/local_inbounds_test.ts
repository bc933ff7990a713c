/**
 * The local's one port as applications meet it (issue 10): curl through every inbound (SOCKS5,
 * SOCKS5 with remote names, SOCKS4, SOCKS4a, HTTP forward proxying, HTTP CONNECT), credentials
 * on each, the npm `socks` client's SOCKS4, and the HTTP inbound's limits: a request line split
 * across segments, a 64 KiB head, a client that stalls mid-head, keep-alive to two targets.
 */
import assert from "node:assert/strict";
import { SocksClient } from "socks";
import type { LocalConfig } from "../../config/types.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import {
  type CurlOptions,
  curlViaSocks,
  deterministicBytes,
  startHttpFixture,
} from "../_fixtures.ts";
import { type Chain, readAll, startChain, waitFor } from "./_harness.ts";

const METHOD = "chacha20-ietf-poly1305";
const USERS = [{ name: "alice", password: "wonder land" }, { name: "bob", password: "b:o:b" }];

async function withChain(
  local: Partial<LocalConfig>,
  fn: (chain: Chain, port: number) => Promise<void>,
) {
  const chain = await startChain(METHOD, { local });
  try {
    await fn(chain, chain.local.addr.port);
  } finally {
    await chain.close();
  }
}

/** curl's proxy flags for each inbound, by name. */
function proxyArgs(kind: string, port: number, credentials?: string): string[] {
  const at = credentials ? `${credentials}@` : "";
  switch (kind) {
    case "socks5":
      return ["-x", `socks5://${at}127.0.0.1:${port}`];
    case "socks5h":
      return ["-x", `socks5h://${at}127.0.0.1:${port}`];
    case "socks4":
      return ["--socks4", `127.0.0.1:${port}`];
    case "socks4a":
      return ["--socks4a", `127.0.0.1:${port}`];
    case "http":
      return ["-x", `http://${at}127.0.0.1:${port}`];
    case "connect":
      return ["-x", `http://${at}127.0.0.1:${port}`, "--proxytunnel"];
    default:
      throw new Error(kind);
  }
}

const INBOUNDS = ["socks5", "socks5h", "socks4", "socks4a", "http", "connect"];

Deno.test("curl downloads and uploads through every inbound of the mixed port", async (t) => {
  await using http = startHttpFixture();
  await withChain({}, async (chain, port) => {
    for (const kind of INBOUNDS) {
      await t.step(kind, async () => {
        const options: CurlOptions = { proxyArgs: proxyArgs(kind, port) };
        // socks4 resolves on the client side: ask for 127.0.0.1; the others carry the name.
        const host = kind === "socks4" || kind === "socks5" ? "127.0.0.1" : "localhost";
        const download = await curlViaSocks(port, http.url("/blob?size=300000", host), options);
        assert.equal(download.code, 0, download.stderr);
        assert.deepEqual(download.stdout, deterministicBytes(300_000));
        const body = deterministicBytes(100_000, 7);
        const echo = await curlViaSocks(port, http.url("/echo", host), { ...options, body });
        assert.equal(echo.code, 0, echo.stderr);
        assert.deepEqual(echo.stdout, body);
      });
    }
    await waitFor(() => chain.server.stats.statuses.OK === 2 * INBOUNDS.length, 5000, "OKs");
  });
});

Deno.test("with local_users, SOCKS5 and HTTP need the right credentials and SOCKS4 is refused", async (t) => {
  await using http = startHttpFixture();
  await withChain({ users: USERS }, async (chain, port) => {
    const url = http.url("/blob?size=1000");
    for (const kind of ["socks5h", "http", "connect"]) {
      await t.step(`${kind}: right credentials pass`, async () => {
        const ok = await curlViaSocks(port, url, {
          proxyArgs: proxyArgs(kind, port),
          extraArgs: ["--proxy-user", "bob:b:o:b"],
        });
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(ok.stdout, deterministicBytes(1000));
      });
      await t.step(`${kind}: wrong and missing credentials fail`, async () => {
        for (const extra of [["--proxy-user", "bob:wrong"], ["--proxy-user", "mallory:x"], []]) {
          const refused = await curlViaSocks(port, url, {
            proxyArgs: proxyArgs(kind, port),
            extraArgs: extra,
          });
          assert.notEqual(refused.code, 0, `${kind} ${extra.join(" ")} passed`);
          assert.equal(refused.stdout.length, 0);
        }
      });
    }
    await t.step("socks4 and socks4a: refused", async () => {
      for (const kind of ["socks4", "socks4a"]) {
        const refused = await curlViaSocks(port, url, { proxyArgs: proxyArgs(kind, port) });
        assert.notEqual(refused.code, 0);
      }
    });
    await t.step("HTTP without credentials gets 407 with a Basic challenge", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, encode(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`));
      const answer = new TextDecoder().decode(await readAll(conn));
      conn.close();
      assert.match(answer, /^HTTP\/1\.1 407 /);
      assert.match(answer, /\r\nProxy-Authenticate: Basic realm="ssdeno"/);
    });
    // Three refused requests per SOCKS5/HTTP kind, two SOCKS4 ones, one raw 407.
    await waitFor(() => chain.local.stats.statuses.ERR_AUTH === 3 * 3 + 2 + 1, 5000, "ERR_AUTH");
    assert.equal(http.requests.get("/blob"), 3, "only the right credentials reached the target");
  });
});

Deno.test("the npm socks client connects through SOCKS4 and SOCKS4a", async () => {
  await using http = startHttpFixture();
  await withChain({}, async (_chain, port) => {
    for (const host of ["127.0.0.1", "localhost"]) {
      const { socket } = await SocksClient.createConnection({
        proxy: { host: "127.0.0.1", port, type: 4 },
        command: "connect",
        destination: { host, port: http.addr.port },
      });
      const response = new Promise<string>((resolve) => {
        let text = "";
        socket.on("data", (data: Uint8Array) => text += new TextDecoder().decode(data));
        socket.on("end", () => resolve(text));
      });
      socket.end(`GET /blob?size=5 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.match(await response, /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n[\s\S]{5}$/);
      socket.destroy();
    }
  });
});

function encode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Reads one HTTP response with a Content-Length body from `conn`. */
async function readResponse(conn: Deno.Conn): Promise<{ head: string; body: Uint8Array }> {
  let bytes = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  for (let end = -1; end < 0;) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("closed before the response head ended");
    const joined = new Uint8Array(bytes.length + n);
    joined.set(bytes);
    joined.set(chunk.subarray(0, n), bytes.length);
    bytes = joined;
    end = new TextDecoder("latin1").decode(bytes).indexOf("\r\n\r\n");
  }
  const text = new TextDecoder("latin1").decode(bytes);
  const headEnd = text.indexOf("\r\n\r\n") + 4;
  const head = text.slice(0, headEnd);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const body = new Uint8Array(length);
  const already = bytes.subarray(headEnd, headEnd + length);
  body.set(already);
  if (length > already.length) await readExact(conn, body.subarray(already.length));
  return { head, body };
}

Deno.test("HTTP keep-alive carries requests to two different targets on one connection", async () => {
  await using first = startHttpFixture();
  await using second = startHttpFixture();
  await withChain({}, async (chain, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      for (const [fixture, size] of [[first, 10], [second, 20], [first, 30]] as const) {
        const url = fixture.url(`/blob?size=${size}`);
        await writeAll(conn, encode(`GET ${url} HTTP/1.1\r\nHost: ignored\r\n\r\n`));
        const { head, body } = await readResponse(conn);
        assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
        assert.match(head, /\r\nConnection: keep-alive\r\n/i);
        assert.deepEqual(body, deterministicBytes(size));
      }
    } finally {
      conn.close();
    }
    assert.equal(first.requests.get("/blob"), 2);
    assert.equal(second.requests.get("/blob"), 1);
    await waitFor(() => chain.local.stats.statuses.OK === 1, 5000, "one OK session");
    await waitFor(() => chain.server.stats.statuses.OK === 3, 5000, "three server sessions");
  });
});

Deno.test("HTTP: a request line split across segments, a 64 KiB head, a stalled head", async (t) => {
  await using http = startHttpFixture();
  await withChain({ handshakeTimeout: 1 }, async (_chain, port) => {
    await t.step("split request line", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.setNoDelay(true);
      const request = encode(`GET ${http.url("/blob?size=3")} HTTP/1.1\r\nHost: h\r\n\r\n`);
      for (const at of [1, 5, 17, request.length]) {
        await writeAll(
          conn,
          request.subarray(at === 1 ? 0 : [1, 5, 17].findLast((x) => x < at)!, at),
        );
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const { head, body } = await readResponse(conn);
      conn.close();
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.deepEqual(body, deterministicBytes(3));
    });
    await t.step("64 KiB of header fields: 431, bounded", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const filler = Array.from({ length: 90 }, (_, i) => `X-Fill-${i}: ${"a".repeat(800)}\r\n`);
      const request = `GET ${http.url("/blob?size=3")} HTTP/1.1\r\nHost: h\r\n${
        filler.join("")
      }\r\n`;
      // The proxy answers and closes once its limit is reached; the rest may not be read.
      await writeAll(conn, encode(request)).catch(() => {});
      const answer = new TextDecoder().decode(await readAll(conn).catch(() => new Uint8Array()));
      conn.close();
      assert.match(answer, /^HTTP\/1\.1 431 /);
      assert.equal(http.requests.get("/blob"), 1, "the oversized request never reached the target");
    });
    await t.step("a client that stalls mid-head is closed at the deadline", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const started = performance.now();
      await writeAll(conn, encode(`GET ${http.url("/")} HTTP/1.1\r\nHost: h\r\nX-Half`));
      const rest = await readAll(conn);
      conn.close();
      const waited = performance.now() - started;
      assert.equal(rest.length, 0);
      assert.ok(waited >= 900 && waited < 5000, `closed after ${waited} ms`);
    });
  });
});
