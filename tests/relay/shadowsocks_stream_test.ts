/**
 * `ShadowsocksStream` over in-memory connections, for every framing: a client stream's bytes
 * fed to a server stream split at every offset decode the same; end-of-stream rules; the
 * answer goes back through the client's framing.
 */
import { AeadCipher } from "../../crypto/aead_cipher.ts";
import { concatBytes } from "../../crypto/bytes.ts";
import { deriveSessionSubkey, evpBytesToKey } from "../../crypto/kdf.ts";
import { generatePsk } from "../../crypto/kdf2022.ts";
import { findMethod } from "../../crypto/methods.ts";
import { type Address, encodeAddress } from "../../protocol/address.ts";
import { sealChunks } from "../../protocol/aead_chunk.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import type { StreamFraming } from "../../protocol/stream_framing.ts";
import { clientFramings, serverFramings } from "../../protocol/session_framings.ts";
import type { Duplex } from "../../relay/io.ts";
import { ShadowsocksStream } from "../../relay/shadowsocks_stream.ts";
import { assertEquals, assertOk, assertRejects } from "../_assert.ts";

/** A connection that hands out `pieces` one per read and records what is written. */
class MemoryConn implements Duplex {
  readonly written: Uint8Array[] = [];
  readonly #pieces: Uint8Array[];

  constructor(pieces: Uint8Array[] = []) {
    this.#pieces = [...pieces];
  }

  /** Queues more bytes for `read`. */
  feed(bytes: Uint8Array): void {
    this.#pieces.push(bytes);
  }

  read(p: Uint8Array): Promise<number | null> {
    const piece = this.#pieces.shift();
    if (piece === undefined) return Promise.resolve(null);
    const n = Math.min(p.length, piece.length);
    p.set(piece.subarray(0, n));
    if (n < piece.length) this.#pieces.unshift(piece.subarray(n));
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}

  /** Everything written, as one buffer. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.written.reduce((n, part) => n + part.length, 0));
    let at = 0;
    for (const part of this.written) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

const TARGET: Address = { type: "domain", host: "example.com", port: 443 };
const FIRST = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");
const LATER = new Uint8Array(20_000).map((_, i) => i * 7);

/** Every method family, with the passwords both sides use. */
function setups() {
  const psk128 = generatePsk(findMethod("2022-blake3-aes-128-gcm")!);
  const psk256 = generatePsk(findMethod("2022-blake3-aes-256-gcm")!);
  const user = generatePsk(findMethod("2022-blake3-aes-128-gcm")!);
  return [
    { method: "aes-128-gcm", client: "pw", server: "pw" },
    { method: "chacha20-ietf-poly1305", client: "pw", server: "pw" },
    { method: "none", client: "", server: "" },
    { method: "2022-blake3-aes-256-gcm", client: psk256, server: psk256 },
    { method: "2022-blake3-chacha20-poly1305", client: psk256, server: psk256 },
    {
      method: "2022-blake3-aes-128-gcm",
      client: `${psk128}:${user}`,
      server: psk128,
      users: [{ name: "alice", password: user }],
    },
  ].map((setup) => {
    const method = findMethod(setup.method)!;
    return {
      name: setup.users ? `${setup.method} with users` : setup.method,
      client: clientFramings(method, setup.client),
      /** A fresh server (own replay state): a flight may be accepted once per server. */
      newServer: () => serverFramings(method, setup.server, { users: setup.users }),
      user: setup.users?.[0]?.name,
    };
  });
}

/** What a client stream writes for FIRST then LATER. */
async function clientFlight(setup: ReturnType<typeof setups>[number]): Promise<Uint8Array> {
  const conn = new MemoryConn();
  const stream = new ShadowsocksStream(conn, setup.client.session(TARGET));
  await stream.start(FIRST);
  await stream.write(LATER);
  assertEquals(conn.written.length, 2, "one write for the first flight, one for the rest");
  return conn.bytes();
}

async function readToEnd(stream: ShadowsocksStream): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const chunk = await stream.readView();
    if (chunk === null) return out;
    out.push(...chunk);
  }
}

Deno.test("a server stream decodes the same request from a flight split at every offset", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      const flight = await clientFlight(setup);
      const header = flight.length - LATER.length; // roughly: the offsets that matter come first
      for (let cut = 0; cut <= flight.length; cut += cut < header + 64 ? 1 : 997) {
        const stream = new ShadowsocksStream(
          new MemoryConn([flight.subarray(0, cut), flight.subarray(cut)]),
          setup.newServer().session(),
        );
        const request = await stream.readRequest().catch((error) => {
          throw new Error(`cut at ${cut}: ${error}`);
        });
        assertEquals(request.address, TARGET, `cut at ${cut}`);
        assertEquals(request.user, setup.user);
        const rest = [...request.payload, ...await readToEnd(stream)];
        assertEquals(rest, [...FIRST, ...LATER], `cut at ${cut}`);
      }
    });
  }
});

Deno.test("the server's answer opens in the client stream, including a silent client's", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      for (const first of [FIRST, new Uint8Array(0)]) {
        const up = new MemoryConn();
        const client = new ShadowsocksStream(up, setup.client.session(TARGET));
        await client.start(first);
        assertEquals(up.written.length, 1, "the first flight is one write, even when empty");
        const down = new MemoryConn([up.bytes()]);
        const server = new ShadowsocksStream(down, setup.newServer().session());
        const request = await server.readRequest();
        assertEquals([...request.payload], [...first]);
        await server.write(new Uint8Array(0)); // nothing to answer yet: nothing sent
        assertEquals(down.written.length, 0);
        await server.write(LATER);
        await server.write(FIRST);
        // The client's framing holds the request salt the answer must echo.
        up.feed(down.bytes());
        assertEquals(await readToEnd(client), [...LATER, ...FIRST]);
      }
    });
  }
});

Deno.test("end of stream: nothing at all is clean, a cut unit is ERR_CIPHER", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, async () => {
      const empty = new ShadowsocksStream(new MemoryConn(), setup.newServer().session());
      const error = await assertRejects(() => empty.readRequest());
      assertOk(error instanceof ProtocolError && error.code === "ERR_READ_ADDRESS", `${error}`);
      if (setup.name === "none") return; // no units to cut
      const flight = await clientFlight(setup);
      const cut = new ShadowsocksStream(
        new MemoryConn([flight.subarray(0, flight.length - 1)]),
        setup.newServer().session(),
      );
      await cut.readRequest();
      const failure = await assertRejects(() => readToEnd(cut));
      assertOk(failure instanceof ProtocolError && failure.code === "ERR_CIPHER", `${failure}`);
    });
  }
});

Deno.test("an address header split over chunks that arrive in separate reads decodes whole", async () => {
  // A framing may return payloads that are views of the stream's buffer (StreamFraming.open);
  // AEAD-2017 chunks open into new arrays today, but the header's first part must outlive the
  // reads that reuse that buffer if they ever open in place again (this fails then without
  // RequestReader's copy).
  const method = findMethod("aes-128-gcm")!;
  const masterKey = evpBytesToKey("pw", method.keySize);
  const salt = crypto.getRandomValues(new Uint8Array(method.saltSize));
  const cipher = new AeadCipher(method.algorithm!, deriveSessionSubkey(masterKey, salt));
  const target: Address = { type: "domain", host: `${"a".repeat(190)}.example`, port: 443 };
  const header = encodeAddress(target);
  const payload = new Uint8Array(100).map((_, i) => i);
  // Most of the header in the first chunk, so that it fills most of the stream's first buffer.
  const first = sealChunks(cipher, header.subarray(0, 190));
  const second = sealChunks(cipher, concatBytes(header.subarray(190), payload));
  const lengthBlock = 2 + cipher.tagSize;
  const conn = new MemoryConn([
    concatBytes(salt, first),
    second.subarray(0, lengthBlock),
    second.subarray(lengthBlock),
  ]);
  const stream = new ShadowsocksStream(conn, serverFramings(method, "pw").session());
  const request = await stream.readRequest();
  assertEquals(request.address, target);
  assertEquals([...request.payload, ...await readToEnd(stream)], [...payload]);
});

/** A framing that seals as it is and counts `prepareNext` calls. */
class CountingFraming implements StreamFraming {
  readonly wanted = 1;
  readonly atChunkBoundary = true;
  prepared = 0;
  open(input: Uint8Array) {
    return { consumed: input.length, payload: input };
  }
  seal(plain: Uint8Array): Uint8Array {
    return plain.slice();
  }
  prepareNext(): void {
    this.prepared++;
  }
}

/** A connection whose writes complete only when released. */
class HeldWrites extends MemoryConn {
  readonly #held: (() => void)[] = [];
  override write(p: Uint8Array): Promise<number> {
    return new Promise((resolve) => this.#held.push(() => resolve(super.write(p))));
  }
  release(): void {
    for (const done of this.#held.splice(0)) done();
  }
}

Deno.test("a stream asks its framing to prepare the next session once its first flight is written", async () => {
  for (const first of ["write", "start"] as const) {
    const conn = new HeldWrites();
    const framing = new CountingFraming();
    const stream = new ShadowsocksStream(conn, framing);
    const flight = first === "write"
      ? stream.write(Uint8Array.of(1))
      : stream.start(Uint8Array.of(1));
    await Promise.resolve();
    assertEquals(framing.prepared, 0, `${first}: not before the flight is written`);
    conn.release();
    await flight;
    assertEquals(framing.prepared, 1, `${first}: once it is`);
    const later = stream.write(Uint8Array.of(2));
    conn.release();
    await later;
    assertEquals(framing.prepared, 1, `${first}: and only once`);
  }
});
