/**
 * Probe resistance of the server: whatever a prober sends, the server answers nothing, does not
 * close before the prober does, and ends the session with the right status.
 */
import { AeadCipher } from "../../crypto/aead_cipher.ts";
import { deriveSessionSubkey, evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod } from "../../crypto/methods.ts";
import { sealChunks } from "../../protocol/aead_chunk.ts";
import { encodeAddress } from "../../protocol/address.ts";
import type { SessionStatus } from "../../protocol/errors.ts";
import { concatBytes, writeAll } from "../../relay/io.ts";
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

const METHOD = findMethod("aes-256-gcm")!;
const PASSWORD = "e2e-password";

/** A valid first flight: salt, then the address (split into `pieces` chunks) and payload. */
function firstFlight(port: number, payload: Uint8Array, splitAddressAt?: number): Uint8Array {
  const salt = crypto.getRandomValues(new Uint8Array(METHOD.saltSize));
  const cipher = new AeadCipher(
    METHOD.algorithm!,
    deriveSessionSubkey(evpBytesToKey(PASSWORD, METHOD.keySize), salt),
  );
  const plain = concatBytes(encodeAddress(localhostTarget(port)), payload);
  if (splitAddressAt === undefined) return concatBytes(salt, sealChunks(cipher, plain));
  return concatBytes(
    salt,
    sealChunks(cipher, plain.subarray(0, splitAddressAt)),
    sealChunks(cipher, plain.subarray(splitAddressAt)),
  );
}

async function withServer(
  fn: (port: number, statuses: Record<SessionStatus, number>, echoPort: number) => Promise<void>,
) {
  const echo = startEchoServer();
  const server = await startServer(serverConfig(METHOD.name), { graceMs: 0 });
  try {
    await fn(server.addr.port, server.stats.statuses, echo.port);
  } finally {
    await server.close();
    await echo.close();
  }
}

Deno.test("random probes of 0 to 221 bytes get no answer and no early close", async () => {
  await withServer(async (port, statuses) => {
    const lengths = [0, 1, 2, 31, 32, 33, 49, 50, 51, 60, 100, 128, 200, 221];
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

Deno.test("every strict prefix of a valid first flight ends without an answer", async () => {
  await withServer(async (port, statuses, echoPort) => {
    // A fresh salt per prefix: prefixes of one flight would be replays of each other.
    const flight = () => firstFlight(echoPort, new TextEncoder().encode("hello"), 3);
    const length = flight().length;
    const firstChunkEnd = METHOD.saltSize + 18 + 3 + 16;
    const results = await Promise.all(
      Array.from({ length }, (_, n) => probe(port, flight().subarray(0, n), 100)),
    );
    results.forEach((result, n) => assertEquals(result, { closedEarly: false, answer: 0 }, `${n}`));
    await waitFor(() => countOf(statuses) === length);
    // Empty, and cut exactly after the first chunk: clean stream end before a whole address.
    assertOk(firstChunkEnd < length);
    assertEquals(statuses.ERR_READ_ADDRESS, 2);
    assertEquals(statuses.ERR_CIPHER, length - 2);
  });
});

Deno.test("every flipped byte of a valid first flight fails authentication", async () => {
  await withServer(async (port, statuses, echoPort) => {
    const flight = firstFlight(echoPort, new TextEncoder().encode("hello"));
    const results = await Promise.all(
      Array.from({ length: flight.length }, (_, i) => {
        const tampered = flight.slice();
        tampered[i]! ^= 0x10;
        return probe(port, tampered, 100);
      }),
    );
    results.forEach((result, i) => assertEquals(result, { closedEarly: false, answer: 0 }, `${i}`));
    await waitFor(() => countOf(statuses) === flight.length);
    assertEquals(statuses.ERR_CIPHER, flight.length);
  });
});

Deno.test("a replayed first flight is refused after the original succeeds", async () => {
  await withServer(async (port, statuses, echoPort) => {
    const flight = firstFlight(echoPort, new TextEncoder().encode("hello"));
    const original = await probe(port, flight, 100);
    assertOk(original.answer > 0, "the original connection is served");
    const replay = await probe(port, flight);
    assertEquals(replay, { closedEarly: false, answer: 0 });
    await waitFor(() => countOf(statuses) === 2);
    assertEquals(statuses.OK, 1);
    assertEquals(statuses.ERR_REPLAY, 1);
  });
});

Deno.test("the server's own reply sent back to it is refused as a replay", async () => {
  await withServer(async (port, statuses, echoPort) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, firstFlight(echoPort, new TextEncoder().encode("reflect me")));
    await conn.closeWrite();
    const reply = await readAll(conn);
    conn.close();
    assertOk(reply.length > METHOD.saltSize);
    const reflected = await probe(port, reply);
    assertEquals(reflected, { closedEarly: false, answer: 0 });
    await waitFor(() => countOf(statuses) === 2);
    assertEquals(statuses.ERR_REPLAY, 1);
  });
});

Deno.test("a chunk length over 0x3FFF is refused", async () => {
  await withServer(async (port, statuses) => {
    const salt = crypto.getRandomValues(new Uint8Array(METHOD.saltSize));
    const cipher = new AeadCipher(
      METHOD.algorithm!,
      deriveSessionSubkey(evpBytesToKey(PASSWORD, METHOD.keySize), salt),
    );
    const result = await probe(port, concatBytes(salt, cipher.seal(Uint8Array.of(0x40, 0x00))));
    assertEquals(result, { closedEarly: false, answer: 0 });
    await waitFor(() => statuses.ERR_CIPHER === 1);
  });
});

Deno.test("a client that stalls inside the salt is cut off at the handshake deadline", async () => {
  const server = await startServer(serverConfig(METHOD.name, { handshakeTimeout: 0.3 }), {
    graceMs: 0,
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await writeAll(conn, new Uint8Array(10));
    const started = Date.now();
    assertEquals((await readAll(conn)).length, 0);
    const waited = Date.now() - started;
    conn.close();
    assertOk(waited >= 250, `closed after ${waited} ms, before the deadline`);
    await waitFor(() => server.stats.statuses.ERR_TIMEOUT === 1);
  } finally {
    await server.close();
  }
});

Deno.test("a prober that keeps sending junk is drained until the handshake deadline, then cut off", async () => {
  const server = await startServer(
    serverConfig(METHOD.name, { handshakeTimeout: DEADLINE_MS / 1000 }),
    {
      graceMs: 0,
    },
  );
  try {
    assertDrainedToDeadline(await sendJunkUntilClosed(server.addr.port, DEADLINE_MS + 5000));
    // Authentication failed first; the drain then ran into the deadline.
    await waitFor(() => server.stats.statuses.ERR_CIPHER === 1);
    assertEquals(countOf(server.stats.statuses), 1);
  } finally {
    await server.close();
  }
});
