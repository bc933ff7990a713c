/**
 * The 2022 edition (SIP022, SIP023) over TCP, end to end: app → SOCKS5 local → server → target
 * and back, per method, single-user and multi-user, plus the tunnel.
 */
import type { TunnelConfig } from "../../config/types.ts";
import { generatePsk, InvalidPskError } from "../../crypto/kdf2022.ts";
import { findMethod, type MethodInfo } from "../../crypto/methods.ts";
import { clientKeys2022, serverKeys2022 } from "../../protocol/aead2022_identity.ts";
import {
  openResponseHeader,
  RequestDecoder,
  ResponseDecoder,
  responseFixedReadLength,
  sealRequest,
} from "../../protocol/aead2022_tcp.ts";
import { SaltPool } from "../../protocol/salt_pool.ts";
import { Reply } from "../../protocol/socks5.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import type { RunningService } from "../../relay/service.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { startTunnel } from "../../tunnel.ts";
import { assertEquals, assertOk, assertRejects } from "../_assert.ts";
import {
  type Chain,
  echoThrough,
  localConfig,
  localhostTarget,
  readAll,
  serverConfig,
  socksConnect,
  startChain,
  startEchoServer,
  waitFor,
} from "./_harness.ts";

const METHODS_2022 = [
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;
/** SIP023 identity headers exist for the AES methods only. */
const AES_METHODS_2022 = ["2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"] as const;
const MIB = 1024 * 1024;

function info(method: string): MethodInfo {
  const found = findMethod(method);
  assertOk(found, method);
  return found;
}

/** A server and a local sharing one fresh PSK. */
function startChain2022(method: string): Promise<Chain> {
  const psk = generatePsk(info(method));
  return startChain(method, { server: { password: psk }, local: { password: psk } });
}

for (const method of METHODS_2022) {
  Deno.test(`4 MiB each way through local and server keep their SHA-256 with ${method}`, async () => {
    const echo = startEchoServer();
    const chain = await startChain2022(method);
    try {
      const { conn, reply } = await socksConnect(chain.local.addr.port, localhostTarget(echo.port));
      assertEquals(reply, Reply.succeeded);
      await echoThrough(conn, 4 * MIB, 0x2022);
      await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
      await waitFor(() => chain.local.stats.statuses.OK === 1, 5000, "local OK");
      for (const side of [chain.server.stats, chain.local.stats]) {
        assertEquals([side.bytesUplink, side.bytesDownlink], [4 * MIB, 4 * MIB]);
      }
    } finally {
      await chain.close();
      await echo.close();
    }
  });
}

Deno.test("the target's half-close reaches the app while the app keeps sending (2022)", async (t) => {
  for (const method of METHODS_2022) {
    await t.step(method, async () => {
      // The target greets, half-closes, then still reads what the app sends.
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const target = (async () => {
        const conn = await listener.accept();
        await writeAll(conn, new TextEncoder().encode("hello"));
        await conn.closeWrite();
        const got = await readAll(conn);
        conn.close();
        return got.length;
      })();
      const chain = await startChain2022(method);
      try {
        const { conn } = await socksConnect(
          chain.local.addr.port,
          localhostTarget(listener.addr.port),
        );
        assertEquals(new TextDecoder().decode(await readAll(conn)), "hello");
        await writeAll(conn, new Uint8Array(300_000).fill(1));
        await conn.closeWrite();
        assertEquals(await target, 300_000);
        conn.close();
        await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
      } finally {
        listener.close();
        await chain.close();
      }
    });
  }
});

Deno.test("the app's half-close reaches the target while the target keeps sending (2022)", async (t) => {
  for (const method of METHODS_2022) {
    await t.step(method, async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const target = (async () => {
        const conn = await listener.accept();
        const got = await readAll(conn); // ends when the app half-closes
        await writeAll(conn, new Uint8Array(200_000).fill(2));
        await writeAll(conn, new TextEncoder().encode(`got ${got.length}`));
        conn.close();
      })();
      const chain = await startChain2022(method);
      try {
        const { conn } = await socksConnect(
          chain.local.addr.port,
          localhostTarget(listener.addr.port),
        );
        await writeAll(conn, new Uint8Array(12345));
        await conn.closeWrite();
        const back = await readAll(conn);
        conn.close();
        assertEquals(back.length, 200_000 + "got 12345".length);
        assertEquals(new TextDecoder().decode(back.subarray(200_000)), "got 12345");
        await target;
        await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
      } finally {
        listener.close();
        await chain.close();
      }
    });
  }
});

/** A target that speaks first: sends `banner` on accept, then echoes until EOF. */
function startBannerServer(banner: Uint8Array): { port: number; done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    try {
      const conn = await listener.accept();
      await writeAll(conn, banner);
      const got = await readAll(conn);
      await writeAll(conn, got);
      conn.close();
    } finally {
      listener.close();
    }
  })();
  return { port: listener.addr.port, done };
}

Deno.test("a silent app gets a server-first target's banner through a padded request", async (t) => {
  for (const method of METHODS_2022) {
    await t.step(method, async () => {
      const banner = new TextEncoder().encode("220 smtp.example ESMTP ready\r\n");
      const target = startBannerServer(banner);
      const chain = await startChain2022(method);
      try {
        const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(target.port));
        // The app says nothing until the banner arrives.
        assertEquals(await readExact(conn, new Uint8Array(banner.length)), banner);
        await writeAll(conn, new TextEncoder().encode("QUIT\r\n"));
        await conn.closeWrite();
        assertEquals(new TextDecoder().decode(await readAll(conn)), "QUIT\r\n");
        conn.close();
        await target.done;
        await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
        assertEquals(chain.server.stats.bytesDownlink, banner.length + 6);
      } finally {
        await chain.close();
      }
    });
  }
});

Deno.test("the local pads a silent app's request; the response header carries the target's first bytes", async (t) => {
  for (const method of METHODS_2022) {
    await t.step(method, async () => {
      const psk = generatePsk(info(method));
      // The local's first flight, caught by a fake server and opened with the server keys.
      const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const local = await startLocal(localConfig(method, fake.addr.port, { password: psk }), {
        graceMs: 0,
      });
      try {
        const { conn } = await socksConnect(local.addr.port, localhostTarget(9));
        const upstream = await fake.accept();
        const decoder = new RequestDecoder(serverKeys2022(info(method), psk), {
          saltPool: new SaltPool(),
        });
        const fixed = await readExact(upstream, new Uint8Array(decoder.wanted));
        assertOk(fixed);
        assertEquals(decoder.next(fixed).payload, null);
        const variable = await readExact(upstream, new Uint8Array(decoder.wanted));
        assertOk(variable);
        const opened = decoder.next(variable);
        assertOk(opened.request, "the request header opens");
        assertEquals(opened.payload?.length, 0);
        assertOk(opened.request.paddingLength >= 1 && opened.request.paddingLength <= 900);
        conn.close();
        upstream.close();
      } finally {
        fake.close();
        await local.close();
      }

      // A raw client with the same silence: the server answers once the target speaks, and
      // the response header's length is exactly the banner's.
      const banner = new TextEncoder().encode("SSH-2.0-OpenSSH_9.6\r\n");
      const target = startBannerServer(banner);
      const server = await startServer(serverConfig(method, { password: psk }), { graceMs: 0 });
      try {
        const keys = clientKeys2022(info(method), psk);
        const request = sealRequest(keys, localhostTarget(target.port));
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
        await writeAll(conn, request.bytes);
        const start = await readExact(
          conn,
          new Uint8Array(responseFixedReadLength(keys.method) + banner.length + 16),
        );
        assertOk(start);
        const header = openResponseHeader(request.response, start);
        assertOk(header);
        assertEquals(header.length, banner.length);
        const step = new ResponseDecoder(request.response).next(start);
        assertEquals(step.payload, banner);
        await conn.closeWrite();
        await readAll(conn);
        conn.close();
        await target.done;
        await waitFor(() => server.stats.statuses.OK === 1, 5000, "server OK");
      } finally {
        await server.close();
      }
    });
  }
});

Deno.test("a target that closes without a word gives the app a clean end (2022)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const target = (async () => {
    const conn = await listener.accept();
    const got = await readAll(conn);
    conn.close();
    return got.length;
  })();
  const chain = await startChain2022("2022-blake3-aes-256-gcm");
  try {
    const { conn } = await socksConnect(chain.local.addr.port, localhostTarget(listener.addr.port));
    await writeAll(conn, new TextEncoder().encode("anyone there?"));
    await conn.closeWrite();
    assertEquals((await readAll(conn)).length, 0);
    conn.close();
    assertEquals(await target, 13);
    await waitFor(() => chain.server.stats.statuses.OK === 1, 5000, "server OK");
    await waitFor(() => chain.local.stats.statuses.OK === 1, 5000, "local OK");
  } finally {
    listener.close();
    await chain.close();
  }
});

Deno.test("the tunnel forwards TCP to its fixed target (2022)", async (t) => {
  for (const method of METHODS_2022) {
    await t.step(method, async () => {
      const psk = generatePsk(info(method));
      const echo = startEchoServer();
      const server = await startServer(serverConfig(method, { password: psk }), { graceMs: 0 });
      const config: TunnelConfig = {
        ...localConfig(method, server.addr.port, { password: psk }),
        tunnelHost: "127.0.0.1",
        tunnelPort: echo.port,
      };
      const tunnel = await startTunnel(config, { graceMs: 0 });
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.addr.port });
        await echoThrough(conn, 1 * MIB, 7);
        await waitFor(() => server.stats.statuses.OK === 1, 5000, "server OK");
        await waitFor(() => tunnel.stats.statuses.OK === 1, 5000, "tunnel OK");
        assertEquals([tunnel.stats.bytesUplink, tunnel.stats.bytesDownlink], [MIB, MIB]);
      } finally {
        await tunnel.close();
        await server.close();
        await echo.close();
      }
    });
  }
});

Deno.test("one multi-user server counts each of three users' sessions and bytes", async (t) => {
  for (const method of AES_METHODS_2022) {
    await t.step(method, async () => {
      const ipsk = generatePsk(info(method));
      const names = ["alice", "bob", "carol"];
      const users = names.map((name) => ({ name, password: generatePsk(info(method)) }));
      const echo = startEchoServer();
      const server = await startServer(serverConfig(method, { password: ipsk, users }), {
        graceMs: 0,
      });
      const locals: RunningService[] = [];
      try {
        for (const user of users) {
          locals.push(
            await startLocal(
              localConfig(method, server.addr.port, { password: `${ipsk}:${user.password}` }),
              { graceMs: 0 },
            ),
          );
        }
        // User i opens i + 1 sessions of 1000 × (i + 1) + s bytes each.
        const expected: Record<string, { sessions: number; bytes: number }> = {};
        const sessions: Promise<void>[] = [];
        for (const [i, name] of names.entries()) {
          expected[name] = { sessions: i + 1, bytes: 0 };
          for (let s = 0; s <= i; s++) {
            const size = 1000 * (i + 1) + s;
            expected[name].bytes += size;
            sessions.push((async () => {
              const { conn } = await socksConnect(locals[i]!.addr.port, localhostTarget(echo.port));
              await echoThrough(conn, size, size);
            })());
          }
        }
        await Promise.all(sessions);
        await waitFor(() => server.stats.statuses.OK === 6, 5000, "six server OKs");
        for (const name of names) {
          const { sessions, bytes } = expected[name]!;
          const { lastSeen, ...counts } = server.stats.users[name]!;
          assertEquals(counts, { sessions, bytesUplink: bytes, bytesDownlink: bytes }, name);
          assertEquals(Math.abs(Date.now() - lastSeen) < 60_000, true, `${name} last seen`);
        }

        // A uPSK the server does not know: the session fails like a bad tag, unanswered.
        const stranger = await startLocal(
          localConfig(method, server.addr.port, {
            password: `${ipsk}:${generatePsk(info(method))}`,
          }),
          { graceMs: 0 },
        );
        locals.push(stranger);
        const { conn } = await socksConnect(stranger.addr.port, localhostTarget(echo.port));
        await writeAll(conn, new TextEncoder().encode("let me in"));
        await conn.closeWrite();
        assertEquals((await readAll(conn)).length, 0);
        conn.close();
        await waitFor(() => server.stats.statuses.ERR_CIPHER === 1, 5000, "ERR_CIPHER");
        assertEquals(server.stats.statuses.OK, 6);
        assertEquals(
          names.map((name) => server.stats.users[name]!.sessions),
          [1, 2, 3],
        );
      } finally {
        for (const local of locals) await local.close();
        await server.close();
        await echo.close();
      }
    });
  }
});

Deno.test("bad 2022 keys fail the start with InvalidPskError", async () => {
  const aes128 = info("2022-blake3-aes-128-gcm");
  const short = generatePsk(info("2022-blake3-aes-128-gcm")).slice(0, 8);
  const long = generatePsk(info("2022-blake3-aes-256-gcm"));
  const cases: [string, () => unknown][] = [
    ["short server key", () => startServer(serverConfig(aes128.name, { password: short }))],
    ["long server key", () => startServer(serverConfig(aes128.name, { password: long }))],
    ["not base64", () => startServer(serverConfig(aes128.name, { password: "not a key!" }))],
    ["bad user key", () =>
      startServer(serverConfig(aes128.name, {
        password: generatePsk(aes128),
        users: [{ name: "alice", password: long }],
      }))],
    ["users on ChaCha", () =>
      startServer(serverConfig("2022-blake3-chacha20-poly1305", {
        password: generatePsk(info("2022-blake3-chacha20-poly1305")),
        users: [{ name: "alice", password: generatePsk(info("2022-blake3-chacha20-poly1305")) }],
      }))],
    ["users on none", () =>
      startServer(serverConfig("none", {
        users: [{ name: "alice", password: "secret" }],
      }))],
    ["bad local key", () => startLocal(localConfig(aes128.name, 1, { password: long }))],
    [
      "bad iPSK in a chain",
      () =>
        startLocal(localConfig(aes128.name, 1, { password: `${short}:${generatePsk(aes128)}` })),
    ],
  ];
  for (const [what, start] of cases) {
    const error = await assertRejects(async () => await start(), what);
    assertOk(error instanceof InvalidPskError, `${what}: ${error}`);
  }
});
