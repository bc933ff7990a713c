import { Reply } from "../../protocol/socks5.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { assertEquals } from "../_assert.ts";
import {
  AEAD_METHODS,
  echoThrough,
  localhostTarget,
  readAll,
  socksConnect,
  startChain,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const MIB = 1024 * 1024;

for (const method of [...AEAD_METHODS, "none"]) {
  Deno.test(`64 MiB each way through local and server keep their SHA-256 with ${method}`, async () => {
    const echo = startEchoServer();
    const chain = await startChain(method);
    try {
      const { conn, reply } = await socksConnect(chain.local.addr.port, localhostTarget(echo.port));
      assertEquals(reply, Reply.succeeded);
      await echoThrough(conn, 64 * MIB, 0x5eed);
      await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
      await waitFor(() => chain.local.stats.statuses.OK === 1, 5000, "local OK");
      for (const side of [chain.server.stats, chain.local.stats]) {
        assertEquals([side.bytesUplink, side.bytesDownlink], [64 * MIB, 64 * MIB]);
      }
    } finally {
      await chain.close();
      await echo.close();
    }
  });
}

Deno.test("200 concurrent sessions each get their own bytes back", async () => {
  const echo = startEchoServer();
  const chain = await startChain("chacha20-ietf-poly1305");
  try {
    const sessions = Array.from({ length: 200 }, async (_, i) => {
      const { conn, reply } = await socksConnect(chain.local.addr.port, localhostTarget(echo.port));
      assertEquals(reply, Reply.succeeded);
      const payload = new TextEncoder().encode(`session ${i} `.repeat(100 + i));
      await writeAll(conn, payload);
      await conn.closeWrite();
      const echoed = await readAll(conn);
      conn.close();
      assertEquals(echoed, payload);
    });
    await Promise.all(sessions);
    await waitFor(() => chain.server.stats.statuses.OK === 200, 10000, "200 server OKs");
    assertEquals(chain.server.stats.active, 0);
  } finally {
    await chain.close();
    await echo.close();
  }
});

Deno.test("the target's half-close reaches the app while the app keeps sending", async () => {
  // The target greets, half-closes, then still reads what the app sends and reports its size.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const target = (async () => {
    const conn = await listener.accept();
    await writeAll(conn, new TextEncoder().encode("hello"));
    await conn.closeWrite();
    const got = await readAll(conn);
    conn.close();
    return got.length;
  })();
  const chain = await startChain("aes-256-gcm");
  try {
    const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(listener.addr.port));
    assertEquals(new TextDecoder().decode(await readAll(conn)), "hello");
    // Our read side saw EOF; our write side is still open end to end.
    await writeAll(conn, new Uint8Array(300_000).fill(1));
    await conn.closeWrite();
    assertEquals(await target, 300_000);
    conn.close();
  } finally {
    listener.close();
    await chain.close();
  }
});

Deno.test("the app's half-close reaches the target while the target keeps sending", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const target = (async () => {
    const conn = await listener.accept();
    const got = await readAll(conn); // ends when the app half-closes
    await writeAll(conn, new Uint8Array(200_000).fill(2));
    await writeAll(conn, new TextEncoder().encode(`got ${got.length}`));
    conn.close();
  })();
  const chain = await startChain("aes-128-gcm");
  try {
    const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(listener.addr.port));
    await writeAll(conn, new Uint8Array(12345));
    await conn.closeWrite();
    const back = await readAll(conn);
    conn.close();
    assertEquals(back.length, 200_000 + "got 12345".length);
    assertEquals(new TextDecoder().decode(back.subarray(200_000)), "got 12345");
    await target;
  } finally {
    listener.close();
    await chain.close();
  }
});

Deno.test("a domain-name target is resolved by the server", async () => {
  const echo = startEchoServer();
  const chain = await startChain("chacha20-ietf-poly1305");
  try {
    const { conn, reply } = await socksConnect(chain.local.addr.port, {
      type: "domain",
      host: "localhost",
      port: echo.port,
    });
    assertEquals(reply, Reply.succeeded);
    await writeAll(conn, new TextEncoder().encode("by name"));
    await conn.closeWrite();
    assertEquals(new TextDecoder().decode(await readAll(conn)), "by name");
    conn.close();
  } finally {
    await chain.close();
    await echo.close();
  }
});

Deno.test("a silent session is closed at the idle timeout on both sides", async () => {
  const echo = startEchoServer();
  const chain = await startChain("aes-128-gcm", {
    server: { timeout: 0.3 },
    local: { timeout: 0.6 },
  });
  try {
    const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(echo.port));
    await writeAll(conn, new TextEncoder().encode("ping"));
    const started = Date.now();
    const back = await readAll(conn); // "ping", then EOF once the server gives up
    conn.close();
    assertEquals(new TextDecoder().decode(back), "ping");
    const waited = Date.now() - started;
    assertEquals(waited >= 250 && waited < 5000, true, `closed after ${waited} ms`);
    await waitFor(() => chain.server.stats.statuses.ERR_TIMEOUT === 1, 5000, "server timeout");
  } finally {
    await chain.close();
    await echo.close();
  }
});

Deno.test("closing a service ends its live sessions after the grace period", async () => {
  const echo = startEchoServer();
  const chain = await startChain("chacha20-ietf-poly1305");
  try {
    const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(echo.port));
    await writeAll(conn, new TextEncoder().encode("x"));
    // Once the echo came back the session is relaying (past its handshake).
    assertEquals(Array.from((await readExact(conn, new Uint8Array(1)))!), [0x78]);
    assertEquals(chain.server.stats.active, 1);
    await chain.server.close();
    assertEquals(chain.server.stats.active, 0);
    assertEquals(chain.server.stats.statuses.ERR_SHUTDOWN, 1);
    await readAll(conn).catch(() => new Uint8Array(0));
    conn.close();
  } finally {
    await chain.close();
    await echo.close();
  }
});
