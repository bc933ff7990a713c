import { buildClientHello, tlsRecordKind } from "../../protocol/tls_client_hello.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";

/** Reads big-endian fields and length-prefixed vectors, failing on any overrun or leftover. */
class Reader {
  #offset = 0;
  constructor(readonly bytes: Uint8Array, readonly what: string) {}

  take(n: number): Uint8Array {
    assertOk(
      this.#offset + n <= this.bytes.length,
      `${this.what}: wants ${n} bytes at ${this.#offset}, has ${this.bytes.length}`,
    );
    const out = this.bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  uint(width: 1 | 2 | 3): number {
    return this.take(width).reduce((value, byte) => value * 256 + byte, 0);
  }

  /** A `width`-byte length, then exactly that many bytes, as a reader of its own. */
  vector(width: 1 | 2 | 3, what: string): Reader {
    return new Reader(this.take(this.uint(width)), `${this.what}/${what}`);
  }

  u16List(): number[] {
    const out: number[] = [];
    while (!this.done) out.push(this.uint(2));
    return out;
  }

  get done(): boolean {
    return this.#offset === this.bytes.length;
  }

  end(): void {
    assertOk(this.done, `${this.what}: ${this.bytes.length - this.#offset} bytes left over`);
  }
}

interface ParsedHello {
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuites: number[];
  compression: number[];
  /** Extension bodies in the order sent. */
  extensions: Map<number, Uint8Array>;
  extensionOrder: number[];
}

/** Walks record header → handshake header → ClientHello fields, checking every length. */
function parseHello(record: Uint8Array): ParsedHello {
  const top = new Reader(record, "record");
  assertEquals(top.uint(1), 0x16, "content type handshake");
  assertEquals(top.uint(2), 0x0301, "record legacy version");
  const handshake = top.vector(2, "handshake");
  top.end();
  assertEquals(handshake.uint(1), 1, "handshake type ClientHello");
  const body = handshake.vector(3, "client_hello");
  handshake.end();

  assertEquals(body.uint(2), 0x0303, "legacy_version");
  const random = body.take(32);
  const sessionIdReader = body.vector(1, "session_id");
  const sessionId = sessionIdReader.take(sessionIdReader.bytes.length);
  const cipherSuites = body.vector(2, "cipher_suites").u16List();
  const compressionReader = body.vector(1, "compression_methods");
  const compression = [...compressionReader.take(compressionReader.bytes.length)];
  const extensionsReader = body.vector(2, "extensions");
  body.end();

  const extensions = new Map<number, Uint8Array>();
  const extensionOrder: number[] = [];
  while (!extensionsReader.done) {
    const type = extensionsReader.uint(2);
    const data = extensionsReader.vector(2, `extension 0x${type.toString(16)}`);
    assertOk(!extensions.has(type), `extension 0x${type.toString(16)} sent twice`);
    extensions.set(type, data.bytes);
    extensionOrder.push(type);
  }
  return { random, sessionId, cipherSuites, compression, extensions, extensionOrder };
}

function extensionReader(hello: ParsedHello, type: number): Reader {
  const data = hello.extensions.get(type);
  assertOk(data, `extension 0x${type.toString(16)} missing`);
  return new Reader(data, `extension 0x${type.toString(16)}`);
}

/** The host_name of server_name, or undefined when there is no SNI. */
function sniOf(hello: ParsedHello): string | undefined {
  if (!hello.extensions.has(0x0000)) return undefined;
  const ext = extensionReader(hello, 0x0000);
  const list = ext.vector(2, "server_name_list");
  ext.end();
  assertEquals(list.uint(1), 0, "name type host_name");
  const name = list.vector(2, "host_name");
  list.end();
  return new TextDecoder().decode(name.bytes);
}

/** A repeatable byte source: byte i of the whole stream is (seed + i) mod 256. */
function countingRandom(seed: number): (n: number) => Uint8Array {
  let next = seed;
  return (n) => Uint8Array.from({ length: n }, () => next++ & 0xff);
}

Deno.test("buildClientHello() lays out a ClientHello whose every length matches", () => {
  const hello = parseHello(buildClientHello("example.com"));
  assertEquals(hello.random.length, 32);
  assertEquals(hello.sessionId.length, 32);
  assertEquals(hello.cipherSuites, [
    0x1301,
    0x1302,
    0x1303,
    0xc02b,
    0xc02f,
    0xc02c,
    0xc030,
    0xcca9,
    0xcca8,
  ]);
  assertEquals(hello.compression, [0]);
  assertEquals(hello.extensionOrder, [
    0x0000,
    0x000a,
    0x000b,
    0x000d,
    0x002b,
    0x002d,
    0x0033,
    0x0010,
  ]);
  assertEquals(sniOf(hello), "example.com");

  const groups = extensionReader(hello, 0x000a);
  assertEquals(groups.vector(2, "named_group_list").u16List(), [0x001d, 0x0017, 0x0018]);
  groups.end();

  const pointFormats = extensionReader(hello, 0x000b);
  assertEquals([...pointFormats.vector(1, "ec_point_format_list").take(1)], [0]);
  pointFormats.end();

  const signatures = extensionReader(hello, 0x000d);
  assertEquals(signatures.vector(2, "supported_signature_algorithms").u16List(), [
    0x0403,
    0x0804,
    0x0401,
    0x0503,
    0x0805,
    0x0501,
    0x0806,
    0x0601,
  ]);
  signatures.end();

  const versions = extensionReader(hello, 0x002b);
  assertEquals(versions.vector(1, "versions").u16List(), [0x0304, 0x0303]);
  versions.end();

  const pskModes = extensionReader(hello, 0x002d);
  const modes = pskModes.vector(1, "ke_modes");
  assertEquals([...modes.take(modes.bytes.length)], [1]);
  pskModes.end();

  const keyShareExt = extensionReader(hello, 0x0033);
  const shares = keyShareExt.vector(2, "client_shares");
  keyShareExt.end();
  assertEquals(shares.uint(2), 0x001d, "key share group x25519");
  const keyExchange = shares.vector(2, "key_exchange");
  shares.end();
  assertEquals(keyExchange.bytes.length, 32);

  const alpn = extensionReader(hello, 0x0010);
  const protocols = alpn.vector(2, "protocol_name_list");
  alpn.end();
  assertEquals(new TextDecoder().decode(protocols.vector(1, "protocol_name").bytes), "http/1.1");
  protocols.end();
});

Deno.test("buildClientHello() sends SNI for DNS names only, never for IP literals", () => {
  for (const name of ["localhost", "www.example.com", "xn--bcher-kva.example", "a"]) {
    assertEquals(sniOf(parseHello(buildClientHello(name))), name);
  }
  // RFC 6066 §3: no trailing dot in HostName.
  assertEquals(sniOf(parseHello(buildClientHello("example.com."))), "example.com");
  for (
    const ip of ["192.0.2.1", "::1", "[::1]", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0"]
  ) {
    const hello = parseHello(buildClientHello(ip));
    assertEquals(sniOf(hello), undefined, ip);
    assertEquals(hello.extensionOrder[0], 0x000a, `${ip}: the other extensions remain`);
  }
});

Deno.test("buildClientHello() fills random, session id and key share from fresh randomness", () => {
  const a = parseHello(buildClientHello("example.com"));
  const b = parseHello(buildClientHello("example.com"));
  assertOk(a.random.some((byte, i) => byte !== b.random[i]), "two calls share a random");
  assertOk(a.sessionId.some((byte, i) => byte !== b.sessionId[i]), "two calls share a session id");
  assertOk(
    a.extensions.get(0x0033)!.some((byte, i) => byte !== b.extensions.get(0x0033)![i]),
    "two calls share a key share",
  );
});

Deno.test("buildClientHello() is deterministic for a deterministic random source", () => {
  const first = buildClientHello("example.com", countingRandom(7));
  assertEquals(buildClientHello("example.com", countingRandom(7)), first);
  const hello = parseHello(first);
  // The source is read in order: client random, session id, key share.
  assertEquals([...hello.random], Array.from({ length: 32 }, (_, i) => 7 + i));
  assertEquals([...hello.sessionId], Array.from({ length: 32 }, (_, i) => 39 + i));
  const keyShare = hello.extensions.get(0x0033)!.subarray(-32);
  assertEquals([...keyShare], Array.from({ length: 32 }, (_, i) => 71 + i));
});

Deno.test("buildClientHello() refuses names that are empty, too long or not ASCII", () => {
  const longest = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}`;
  assertEquals(longest.length, 255);
  assertEquals(sniOf(parseHello(buildClientHello(longest))), longest);
  for (const name of ["", `${longest}e`, "bücher.example", "例え.jp", "a b.example", "a\0b"]) {
    const error = assertThrows(() => buildClientHello(name), JSON.stringify(name));
    assertOk(error instanceof RangeError, `${JSON.stringify(name)}: ${error}`);
  }
  const short = assertThrows(() => buildClientHello("example.com", () => new Uint8Array(16)));
  assertOk(short instanceof RangeError, `${short}`);
});

Deno.test("tlsRecordKind() reads the first record header", () => {
  assertEquals(tlsRecordKind(Uint8Array.of(0x16, 0x03, 0x03, 0x00, 0x7a)), "handshake");
  assertEquals(tlsRecordKind(Uint8Array.of(0x16, 0x03, 0x01)), "handshake");
  assertEquals(tlsRecordKind(Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28)), "alert");
  assertEquals(tlsRecordKind(new TextEncoder().encode("HTTP/1.1 400 Bad Request")), "other");
  assertEquals(tlsRecordKind(Uint8Array.of(0x16)), "other");
  assertEquals(tlsRecordKind(new Uint8Array()), "other");
  assertEquals(tlsRecordKind(Uint8Array.of(0x17, 0x03, 0x03)), "other");
  assertEquals(tlsRecordKind(Uint8Array.of(0x16, 0x02, 0x00)), "other");
});

// Interop: a real TLS stack (rustls, inside Deno.listenTls) must answer our hand-made hello.

const ANSWER_TIMEOUT_MS = 5_000;

/** A fresh self-signed P-256 certificate for `localhost`, made with the openssl CLI. */
async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "ssdeno-tls-hello-" });
  try {
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          `${dir}/k.pem`,
          "-out",
          `${dir}/c.pem`,
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (error) {
      throw new Error(
        "The TLS interop test needs the openssl CLI on PATH to make a self-signed certificate",
        { cause: error },
      );
    }
    assertOk(
      output.success,
      `openssl req failed: ${new TextDecoder().decode(output.stderr)}`,
    );
    return {
      cert: await Deno.readTextFile(`${dir}/c.pem`),
      key: await Deno.readTextFile(`${dir}/k.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Reads one whole TLS record (5-byte header, then its length), giving up after `timeoutMs` by
 * closing the connection so the pending read ends.
 */
async function readRecord(conn: Deno.Conn, timeoutMs: number): Promise<Uint8Array> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  let received = new Uint8Array();
  const wanted = () => received.length < 5 ? 5 : 5 + ((received[3]! << 8) | received[4]!);
  try {
    const buffer = new Uint8Array(16 * 1024);
    while (received.length < wanted()) {
      const n = await conn.read(buffer);
      if (n === null) break;
      const grown = new Uint8Array(received.length + n);
      grown.set(received);
      grown.set(buffer.subarray(0, n), received.length);
      received = grown;
    }
  } catch (error) {
    if (!timedOut) throw error;
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) throw new Error(`no whole TLS record within ${timeoutMs} ms`);
  return received.subarray(0, Math.min(received.length, wanted()));
}

/**
 * Starts a TLS listener, sends it `hello` over a plain TCP connection and returns the first
 * record it answers with. Everything opened here is closed before returning.
 */
async function exchangeWithRustls(
  hello: Uint8Array,
): Promise<Uint8Array> {
  const { cert, key } = await selfSignedCert();
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  try {
    // The handshake can never finish (we stop after the first flight), so its failure once the
    // client hangs up is expected; we only need the server to have answered.
    const server = listener.accept().then(async (conn) => {
      try {
        await conn.handshake();
      } catch {
        // expected: the client closes mid-handshake or is refused
      } finally {
        try {
          conn.close();
        } catch {
          // already closed by the failed handshake
        }
      }
    });
    const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    let record: Uint8Array;
    try {
      let written = 0;
      while (written < hello.length) written += await client.write(hello.subarray(written));
      record = await readRecord(client, ANSWER_TIMEOUT_MS);
    } finally {
      try {
        client.close();
      } catch {
        // closed by readRecord's timeout
      }
    }
    await server;
    return record;
  } finally {
    listener.close();
  }
}

/** What a ServerHello echoed and picked: session id, TLS version, key share group. */
function parseServerHello(
  record: Uint8Array,
): { sessionIdEcho: Uint8Array; version: number; group: number } {
  const top = new Reader(record, "server record");
  assertEquals(top.uint(1), 0x16, "server content type handshake");
  top.uint(2);
  const handshake = top.vector(2, "server handshake");
  top.end();
  assertEquals(handshake.uint(1), 2, "handshake type ServerHello");
  const body = handshake.vector(3, "server_hello");
  assertEquals(body.uint(2), 0x0303, "ServerHello legacy_version");
  body.take(32);
  const echo = body.vector(1, "legacy_session_id_echo");
  const sessionIdEcho = echo.take(echo.bytes.length);
  assertOk([0x1301, 0x1302, 0x1303].includes(body.uint(2)), "a TLS 1.3 cipher suite");
  assertEquals(body.uint(1), 0, "compression");
  const extensions = body.vector(2, "server extensions");
  body.end();
  let version = 0;
  let group = 0;
  while (!extensions.done) {
    const type = extensions.uint(2);
    const data = extensions.vector(2, `server extension 0x${type.toString(16)}`);
    if (type === 0x002b) version = data.uint(2);
    if (type === 0x0033) group = data.uint(2);
  }
  return { sessionIdEcho, version, group };
}

Deno.test("rustls answers our ClientHello with a TLS 1.3 ServerHello", async (t) => {
  for (const name of ["localhost", "127.0.0.1"]) {
    await t.step(name === "localhost" ? "with SNI" : "without SNI (IP literal)", async () => {
      const hello = buildClientHello(name);
      const record = await exchangeWithRustls(hello);
      assertEquals(tlsRecordKind(record), "handshake");
      // The echoed session id, negotiated version and group show that the server parsed our
      // fields and extensions, not just our record header.
      assertEquals(parseServerHello(record), {
        sessionIdEcho: parseHello(hello).sessionId,
        version: 0x0304,
        group: 0x001d,
      });
    });
  }
});

Deno.test("rustls refusing a hello answers with an alert that tlsRecordKind() names", async () => {
  // Our hello with every cipher suite swapped for a reserved GREASE value (RFC 8701), which no
  // server accepts: lengths stay valid, so the refusal is a proper alert, not a dropped socket.
  const hello = buildClientHello("localhost");
  const suitesAt = 5 + 4 + 2 + 32 + 1 + 32;
  assertEquals((hello[suitesAt]! << 8) | hello[suitesAt + 1]!, 18, "9 suites at the offset");
  hello.fill(0x0a, suitesAt + 2, suitesAt + 2 + 18);
  const record = await exchangeWithRustls(hello);
  assertEquals(tlsRecordKind(record), "alert");
  // Alert record: level fatal (2), description handshake_failure (40), RFC 8446 §6.
  assertEquals([...record.subarray(5)], [2, 40]);
});
