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
import { waitForSocket } from "./_tcp_info.ts";

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
      let sent = 0;
      // Each byte goes only once the local has read the one before (its socket shows every
      // byte in and none unread), so every read it does returns exactly one byte.
      const sendByteByByte = async (bytes: Uint8Array) => {
        for (const byte of bytes) {
          await writeAll(conn, Uint8Array.of(byte));
          sent++;
          await waitForSocket(port, (s) => s.bytesReceived === sent && s.recvQ === 0, {
            peerPort: conn.localAddr.port,
            what: `the local to read byte ${sent} on its own`,
          });
        }
      };
      await sendByteByByte(Uint8Array.of(5, 2, 0, 2));
      const choice = await readExact(conn, new Uint8Array(2));
      assertEquals(choice && Array.from(choice), [5, 0], "the answer to the split greeting");
      await sendByteByByte(
        Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff),
      );
      const reply = await readExact(conn, new Uint8Array(10));
      assertEquals(reply?.[1], Reply.succeeded, "the reply to the split request");
      await writeAll(conn, new TextEncoder().encode("split"));
      await conn.closeWrite();
      assertEquals(new TextDecoder().decode(await readAll(conn)), "split");
    } finally {
      conn.close();
    }
  }, { local: { handshakeTimeout: 3 } }); // a parser stuck on a split fails in 3 s, not 10
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

Deno.test("local sends salt, address and the app's first bytes in one write", async (t) => {
  // salt 32 + sealed length 18 + sealed (address 15 + payload 100) + tag 16
  const flightBytes = 32 + 18 + 15 + 100 + 16;
  const payload = new Uint8Array(100);
  const host = new TextEncoder().encode("example.com");
  /**
   * A fake server: takes one connection, waits until the whole first flight is in, and tells
   * how many data segments carried it. One write of 181 bytes is one segment; the same bytes
   * in two writes are two, however long one waits before reading them.
   */
  const fakeServer = (listener: Deno.TcpListener) =>
    (async () => {
      using conn = await listener.accept();
      const socket = await waitForSocket(
        listener.addr.port,
        (s) => s.bytesReceived >= flightBytes,
        { peerPort: conn.remoteAddr.port, what: "the whole first flight" },
      );
      return { bytes: socket.bytesReceived, segments: socket.dataSegsIn };
    })();

  await t.step("the app's bytes sent right after the SOCKS5 reply", async () => {
    using fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const received = fakeServer(fake);
    await withLocal(async (port) => {
      const { conn } = await socksConnect(port, { type: "domain", host: "example.com", port: 80 });
      await writeAll(conn, payload); // well within the local's 20 ms wait for first bytes
      assertEquals(await received, { bytes: flightBytes, segments: 1 });
      await readAll(conn);
      conn.close();
    }, { local: { serverPort: fake.addr.port } });
  });

  await t.step("the app's bytes pipelined with the SOCKS5 request", async () => {
    using fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const received = fakeServer(fake);
    await withLocal(async (port) => {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, Uint8Array.of(5, 1, 0));
      assertEquals(Array.from((await readExact(conn, new Uint8Array(2)))!), [5, 0]);
      const request = [5, 1, 0, 3, host.length, ...host, 0, 80];
      await writeAll(conn, Uint8Array.of(...request, ...payload));
      assertEquals(await received, { bytes: flightBytes, segments: 1 });
      await readAll(conn);
    }, { local: { serverPort: fake.addr.port } });
  });
});
