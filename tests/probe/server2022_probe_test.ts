/**
 * Probe resistance of a 2022-edition server (SIP022 §7.4, SIP023): whatever a prober sends —
 * junk, a cut or tampered first flight, a replay, a stale timestamp, a response reflected back —
 * the server answers nothing, does not close before the prober does, and ends the session with
 * the right status. A client refused for its clock is named in an info line with the skew.
 */
import type { ServerConfig } from "../../config/types.ts";
import { generatePsk } from "../../crypto/kdf2022.ts";
import { findMethod, type MethodInfo } from "../../crypto/methods.ts";
import {
  type ClientKeys2022,
  clientKeys2022,
  serverKeys2022,
} from "../../protocol/aead2022_identity.ts";
import { requestFixedReadLength, sealRequest } from "../../protocol/aead2022_tcp.ts";
import type { SessionStatus } from "../../protocol/errors.ts";
import { writeAll } from "../../relay/io.ts";
import { createLogger } from "../../relay/log.ts";
import { startServer } from "../../server.ts";
import { assertEquals, assertOk } from "../_assert.ts";
import { assertDrainedToDeadline, DEADLINE_MS, sendJunkUntilClosed } from "./_junk.ts";
import {
  countOf,
  localhostTarget,
  probe,
  readAll,
  serverConfig,
  startEchoServer,
  waitFor,
} from "../e2e/_harness.ts";

interface Setup {
  name: string;
  method: MethodInfo;
  server: Partial<ServerConfig>;
  client: ClientKeys2022;
}

/** Single-user for every method, and multi-user (one EIH in each request) for AES-128. */
function setups(): Setup[] {
  const out: Setup[] = [];
  for (const name of ["2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305"]) {
    const method = findMethod(name)!;
    const psk = generatePsk(method);
    out.push({ name, method, server: { password: psk }, client: clientKeys2022(method, psk) });
  }
  const method = findMethod("2022-blake3-aes-128-gcm")!;
  const ipsk = generatePsk(method);
  const users = ["alice", "bob", "carol"].map((name) => ({
    name,
    password: generatePsk(method),
  }));
  out.push({
    name: `${method.name} with users`,
    method,
    server: { password: ipsk, users },
    client: clientKeys2022(method, `${ipsk}:${users[1]!.password}`),
  });
  return out;
}

const HELLO = new TextEncoder().encode("hello");

/** A valid first flight with a fresh salt: salt, [EIH], fixed header, variable header + payload. */
function firstFlight(setup: Setup, port: number, now?: () => number): Uint8Array {
  return sealRequest(setup.client, localhostTarget(port), {
    payload: HELLO,
    ...(now ? { now } : {}),
  }).bytes;
}

interface Running {
  port: number;
  echoPort: number;
  statuses: Record<SessionStatus, number>;
  lines: string[];
}

async function withServer(setup: Setup, fn: (server: Running) => Promise<void>) {
  const echo = startEchoServer();
  const lines: string[] = [];
  const server = await startServer(serverConfig(setup.method.name, setup.server), {
    graceMs: 0,
    logger: createLogger("info", (line) => lines.push(line)),
  });
  try {
    await fn({
      port: server.addr.port,
      echoPort: echo.port,
      statuses: server.stats.statuses,
      lines,
    });
  } finally {
    await server.close();
    await echo.close();
  }
}

/** Waits until the wall clock is early in a second, so a probe's timestamp lands in it. */
async function startOfSecond(): Promise<void> {
  const ms = Date.now() % 1000;
  if (ms > 500) await new Promise((resolve) => setTimeout(resolve, 1010 - ms));
}

Deno.test("2022: random probes of 0 to 221 bytes get no answer and no early close", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses }) => {
        const lengths = [0, 1, 15, 16, 17, 31, 32, 43, 58, 59, 75, 76, 100, 128, 200, 221];
        const results = await Promise.all(
          lengths.map((n) => probe(port, crypto.getRandomValues(new Uint8Array(n)))),
        );
        for (const [i, result] of results.entries()) {
          assertEquals(result, { closedEarly: false, answer: 0 }, `probe of ${lengths[i]} bytes`);
        }
        await waitFor(() => countOf(statuses) === lengths.length);
        assertEquals(statuses.ERR_CIPHER, lengths.length - 1);
        assertEquals(statuses.ERR_READ_ADDRESS, 1); // the empty probe
      });
    });
  }
});

Deno.test("2022: every strict prefix of a valid first flight ends without an answer", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses, echoPort }) => {
        // A fresh salt per prefix: prefixes of one flight would be replays of each other.
        const length = firstFlight(setup, echoPort).length;
        const results = await Promise.all(
          Array.from(
            { length },
            (_, n) => probe(port, firstFlight(setup, echoPort).subarray(0, n), 100),
          ),
        );
        results.forEach((result, n) =>
          assertEquals(result, { closedEarly: false, answer: 0 }, `prefix of ${n}`)
        );
        await waitFor(() => countOf(statuses) === length);
        // Empty: a clean end before any address. Anything else ends inside a sealed unit,
        // including right after the fixed header (its salt was stored, the address never came).
        assertEquals(statuses.ERR_READ_ADDRESS, 1);
        assertEquals(statuses.ERR_CIPHER, length - 1);
      });
    });
  }
});

Deno.test("2022: every flipped byte of a valid first flight fails authentication", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses, echoPort }) => {
        const length = firstFlight(setup, echoPort).length;
        const results = await Promise.all(
          Array.from({ length }, (_, i) => {
            // Fresh salt each time, so a flip after the fixed header is not a replay.
            const tampered = firstFlight(setup, echoPort);
            tampered[i]! ^= 0x10;
            return probe(port, tampered, 100);
          }),
        );
        results.forEach((result, i) =>
          assertEquals(result, { closedEarly: false, answer: 0 }, `flip at ${i}`)
        );
        await waitFor(() => countOf(statuses) === length);
        assertEquals(statuses.ERR_CIPHER, length);
      });
    });
  }
});

Deno.test("2022: the same first flight sent twice is refused the second time", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses, echoPort }) => {
        const flight = firstFlight(setup, echoPort);
        const original = await probe(port, flight, 100);
        assertOk(original.answer > 0, "the original connection is served");
        const replay = await probe(port, flight);
        assertEquals(replay, { closedEarly: false, answer: 0 });
        await waitFor(() => countOf(statuses) === 2);
        assertEquals(statuses.OK, 1);
        assertEquals(statuses.ERR_REPLAY, 1);
      });
    });
  }
});

Deno.test("2022: a timestamp 31 s off is refused and the clock skew is logged", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses, echoPort, lines }) => {
        for (const offset of [31, -31]) {
          await startOfSecond();
          const flight = firstFlight(setup, echoPort, () => Date.now() + offset * 1000);
          const result = await probe(port, flight);
          assertEquals(result, { closedEarly: false, answer: 0 }, `${offset} s`);
        }
        // 30 s off still passes (the bound is inclusive, as in ss-rust and ss-go).
        await startOfSecond();
        const edge = await probe(port, firstFlight(setup, echoPort, () => Date.now() + 30_000));
        assertOk(edge.answer > 0, "30 s off is served");
        await waitFor(() => countOf(statuses) === 3);
        assertEquals(statuses.ERR_REPLAY, 2);
        assertEquals(statuses.OK, 1);
        for (const skew of ["clock skew of 31 s", "clock skew of -31 s"]) {
          const line = lines.find((line) => line.includes(skew));
          assertOk(line, `a line says "${skew}": ${lines.join("\n")}`);
          assertOk(line.includes(" INFO ") && line.includes("127.0.0.1:"), line);
        }
      });
    });
  }
});

Deno.test("2022: the server's own response sent back to it fails authentication", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      await withServer(setup, async ({ port, statuses, echoPort }) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await writeAll(conn, firstFlight(setup, echoPort));
        await conn.closeWrite();
        const reply = await readAll(conn);
        conn.close();
        assertOk(reply.length > setup.method.saltSize);
        const reflected = await probe(port, reply);
        assertEquals(reflected, { closedEarly: false, answer: 0 });
        await waitFor(() => countOf(statuses) === 2);
        assertEquals(statuses.OK, 1);
        assertEquals(statuses.ERR_CIPHER, 1);
      });
    });
  }
});

Deno.test("2022: a multi-user server refuses a request without an identity header", async () => {
  const [, , multi] = setups();
  assertOk(multi);
  await withServer(multi, async ({ port, statuses, echoPort }) => {
    // The user's own key, but no EIH: the server reads the fixed header 16 bytes too early.
    const method = multi.method;
    const single = clientKeys2022(method, multi.server.users![0]!.password);
    const flight = sealRequest(single, localhostTarget(echoPort), { payload: HELLO }).bytes;
    const keys = serverKeys2022(method, multi.server.password!, multi.server.users);
    assertOk(flight.length >= requestFixedReadLength(keys));
    const result = await probe(port, flight);
    assertEquals(result, { closedEarly: false, answer: 0 });
    await waitFor(() => statuses.ERR_CIPHER === 1);
  });
});

Deno.test("2022: a prober that keeps sending junk is drained until the handshake deadline, then cut off", async () => {
  const method = findMethod("2022-blake3-aes-256-gcm")!;
  const server = await startServer(
    serverConfig(method.name, {
      password: generatePsk(method),
      handshakeTimeout: DEADLINE_MS / 1000,
    }),
    { graceMs: 0 },
  );
  try {
    assertDrainedToDeadline(await sendJunkUntilClosed(server.addr.port, DEADLINE_MS + 5000));
    await waitFor(() => server.stats.statuses.ERR_CIPHER === 1);
    assertEquals(countOf(server.stats.statuses), 1);
  } finally {
    await server.close();
  }
});
