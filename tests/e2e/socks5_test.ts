import { Reply } from "../../protocol/socks5.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import { assertEquals } from "../_assert.ts";
import {
  localhostTarget,
  readAll,
  socksConnect,
  startChain,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

async function withLocal(
  fn: (port: number, chain: Awaited<ReturnType<typeof startChain>>) => Promise<void>,
  overrides: Parameters<typeof startChain>[1] = {},
) {
  const chain = await startChain("chacha20-ietf-poly1305", overrides);
  try {
    await fn(chain.local.addr.port, chain);
  } finally {
    await chain.close();
  }
}

/** Sends `bytes`, half-closes, and returns all the local answered before closing. */
async function exchange(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, bytes);
    await conn.closeWrite();
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

Deno.test("local answers 0xFF when no acceptable method is offered, then closes", async () => {
  await withLocal(async (port, chain) => {
    assertEquals(Array.from(await exchange(port, Uint8Array.of(5, 1, 2))), [5, 0xff]);
    await waitFor(() => chain.local.stats.statuses.ERR_CLIENT_PROTOCOL === 1);
  });
});

Deno.test("local replies 0x07 to BIND and 0x08 to an unknown address type", async () => {
  await withLocal(async (port) => {
    const bind = await exchange(port, Uint8Array.of(5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80));
    assertEquals(Array.from(bind.subarray(0, 4)), [5, 0, 5, Reply.commandNotSupported]);
    const atyp = await exchange(port, Uint8Array.of(5, 1, 0, 5, 1, 0, 7, 1, 2, 3, 4, 0, 80));
    assertEquals(Array.from(atyp.subarray(0, 4)), [5, 0, 5, Reply.addressTypeNotSupported]);
  });
});

Deno.test("local closes on garbage, truncated greetings and a zero-length domain", async () => {
  await withLocal(async (port, chain) => {
    // A TLS ClientHello's first byte is none of SOCKS5, SOCKS4 or HTTP: closed, no reply.
    assertEquals((await exchange(port, Uint8Array.of(0x16, 3, 1, 0, 5))).length, 0);
    // An origin-form HTTP request is HTTP, but not a proxy request: 400.
    const origin = await exchange(port, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    assertEquals(new TextDecoder().decode(origin).split("\r\n")[0], "HTTP/1.1 400 Bad Request");
    assertEquals((await exchange(port, Uint8Array.of(5))).length, 0);
    assertEquals((await exchange(port, Uint8Array.of(5, 3, 0))).length, 0);
    const zero = await exchange(port, Uint8Array.of(5, 1, 0, 5, 1, 0, 3, 0, 0, 80));
    assertEquals(Array.from(zero), [5, 0]);
    await waitFor(() => chain.local.stats.statuses.ERR_READ_ADDRESS === 3, 5000, "3 failures");
    await waitFor(() => chain.local.stats.statuses.ERR_CLIENT_PROTOCOL === 2, 5000, "2 more");
    assertEquals(chain.local.stats.active, 0);
  });
});

Deno.test("local accepts a request split into one-byte segments", async () => {
  const echo = startEchoServer();
  await withLocal(async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      conn.setNoDelay(true);
      const greeting = Uint8Array.of(5, 2, 0, 2);
      const request = Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff);
      for (const byte of greeting) {
        await writeAll(conn, Uint8Array.of(byte));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assertEquals(Array.from((await readExact(conn, new Uint8Array(2)))!), [5, 0]);
      for (const byte of request) {
        await writeAll(conn, Uint8Array.of(byte));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const reply = (await readExact(conn, new Uint8Array(10)))!;
      assertEquals(reply[1], Reply.succeeded);
      await writeAll(conn, new TextEncoder().encode("split"));
      await conn.closeWrite();
      assertEquals(new TextDecoder().decode(await readAll(conn)), "split");
    } finally {
      conn.close();
    }
  });
  await echo.close();
});

Deno.test("local ends a stalled handshake at the deadline", async () => {
  await withLocal(async (port, chain) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await writeAll(conn, Uint8Array.of(5, 1));
      assertEquals((await readAll(conn)).length, 0);
      await waitFor(() => chain.local.stats.statuses.ERR_TIMEOUT === 1);
    } finally {
      conn.close();
    }
  }, { local: { handshakeTimeout: 0.2 } });
});

Deno.test("local replies 0x05 when the server refuses the connection", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  await withLocal(async (port, chain) => {
    const { conn, reply } = await socksConnect(port, localhostTarget(80));
    conn.close();
    assertEquals(reply, Reply.connectionRefused);
    await waitFor(() => chain.local.stats.statuses.ERR_CONNECT === 1);
  }, { local: { serverPort: deadPort } });
});

Deno.test("server refuses loopback targets unless private targets are allowed", async () => {
  const echo = startEchoServer();
  await withLocal(async (port, chain) => {
    const { conn, reply } = await socksConnect(port, localhostTarget(echo.port));
    assertEquals(reply, Reply.succeeded); // the local cannot know; the server refuses
    await writeAll(conn, new TextEncoder().encode("hello"));
    assertEquals((await readAll(conn)).length, 0);
    conn.close();
    await waitFor(() => chain.server.stats.statuses.ERR_TARGET_FORBIDDEN === 1);
    const byName = await socksConnect(port, { type: "domain", host: "localhost", port: echo.port });
    assertEquals((await readAll(byName.conn)).length, 0);
    byName.conn.close();
    await waitFor(() => chain.server.stats.statuses.ERR_TARGET_FORBIDDEN === 2);
  }, { server: { allowPrivateTargets: false } });
  await echo.close();
});

Deno.test("local sends salt, address and the app's first bytes in one write", async () => {
  // A fake server records what its first read returns.
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const firstRead = (async () => {
    const conn = await fake.accept();
    const buffer = new Uint8Array(4096);
    await new Promise((resolve) => setTimeout(resolve, 100)); // let everything arrive
    const n = await conn.read(buffer);
    conn.close();
    return n;
  })();
  await withLocal(async (port) => {
    const { conn } = await socksConnect(port, { type: "domain", host: "example.com", port: 80 });
    await writeAll(conn, new Uint8Array(100));
    const n = await firstRead;
    // salt 32 + sealed length 18 + sealed (address 15 + payload 100) + tag 16
    assertEquals(n, 32 + 18 + 15 + 100 + 16);
    await readAll(conn);
    conn.close();
  }, { local: { serverPort: fake.addr.port } });
  fake.close();
});
