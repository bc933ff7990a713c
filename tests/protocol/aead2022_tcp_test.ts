import assert from "node:assert/strict";
import { sealChunks } from "../../protocol/aead_chunk.ts";
import type { Address } from "../../protocol/address.ts";
import {
  type ClientKeys2022,
  clientKeys2022,
  sealTcpIdentityHeaders,
  type ServerKeys2022,
  serverKeys2022,
} from "../../protocol/aead2022_identity.ts";
import {
  checkTimestamp,
  MAX_TIMESTAMP_SKEW,
  TimestampError,
} from "../../protocol/aead2022_time.ts";
import {
  createTcpCipher2022,
  decodeRequestFixedHeader,
  decodeRequestVariableHeader,
  decodeResponseHeader,
  encodeRequestFixedHeader,
  encodeRequestVariableHeader,
  encodeResponseHeader,
  MAX_CHUNK_PAYLOAD_2022,
  MAX_PADDING_LENGTH,
  openRequestFixedHeader,
  openRequestVariableHeader,
  openResponseHeader,
  REQUEST_FIXED_HEADER_LENGTH,
  RequestDecoder,
  requestFixedReadLength,
  requestVariableHeaderLength,
  ResponseDecoder,
  responseFixedReadLength,
  responseHeaderLength,
  sealRequest,
  sealResponse,
} from "../../protocol/aead2022_tcp.ts";
import type { ChunkStep } from "../../protocol/aead_chunk.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { SaltPool } from "../../protocol/salt_pool.ts";
import {
  assertProtocolError,
  hex,
  method,
  METHODS_2022,
  randomKey,
  toBase64,
  toHex,
  utf8,
} from "../crypto/_vectors2022.ts";

const NOW = 1_700_000_000_000; // a fixed wall clock, ms
const now = () => NOW;
const TARGET: Address = { type: "domain", host: "example.com", port: 443 };
const IPV4: Address = { type: "ipv4", host: "192.0.2.1", port: 80 };
const IPV6: Address = { type: "ipv6", host: "2001:db8::1", port: 8080 };

interface Setup {
  client: ClientKeys2022;
  server: ServerKeys2022;
  name: string;
}

/** Single-user setups for all three methods, plus multi-user (3 users) for the AES ones. */
function setups(): Setup[] {
  const out: Setup[] = [];
  for (const name of METHODS_2022) {
    const info = method(name);
    const psk = toBase64(randomKey(info));
    out.push({
      name,
      client: clientKeys2022(info, psk),
      server: serverKeys2022(info, psk),
    });
    if (name.includes("aes")) {
      const ipsk = toBase64(randomKey(info));
      const users = ["alice", "bob", "carol"].map((user) => ({
        name: user,
        password: toBase64(randomKey(info)),
      }));
      out.push({
        name: `${name} with users`,
        client: clientKeys2022(info, `${ipsk}:${users[1]!.password}`),
        server: serverKeys2022(info, ipsk, users),
      });
    }
  }
  return out;
}

interface Decoder {
  next(input: Uint8Array): ChunkStep;
}

/** Feeds `input` to `decoder` until it needs more; returns the payloads and leftover bytes. */
function drain(decoder: Decoder, input: Uint8Array): { payloads: Uint8Array[]; rest: Uint8Array } {
  const payloads: Uint8Array[] = [];
  let rest = input;
  for (;;) {
    const step = decoder.next(rest);
    rest = rest.subarray(step.consumed);
    if (step.payload === null) return { payloads, rest };
    payloads.push(step.payload);
  }
}

/** Random bytes of any length (getRandomValues takes at most 65536 at a time). */
function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Codecs

Deno.test("request fixed header: layout, round trip and every field boundary", () => {
  const bytes = encodeRequestFixedHeader({ timestamp: 0x0102030405, length: 0xabcd });
  assert.equal(toHex(bytes), "00" + "0000000102030405" + "abcd");
  assert.equal(bytes.length, REQUEST_FIXED_HEADER_LENGTH);
  for (const timestamp of [0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    for (const length of [0, 1, 0xff, 0x100, 0xffff]) {
      const decoded = decodeRequestFixedHeader(encodeRequestFixedHeader({ timestamp, length }));
      assert.deepEqual(decoded, { timestamp, length });
    }
  }
  assert.equal(decodeRequestFixedHeader(hex("00ffffffffffffffff0000"))!.timestamp, 2 ** 64);
  assert.throws(() => encodeRequestFixedHeader({ timestamp: 0, length: 0x10000 }), RangeError);
  assert.throws(() => encodeRequestFixedHeader({ timestamp: -1, length: 1 }), RangeError);
  assert.throws(() => encodeRequestFixedHeader({ timestamp: 1.5, length: 1 }), RangeError);
});

Deno.test("header timestamps read as Number(getBigUint64) would, past 2^53 too", () => {
  const fixed = new Uint8Array(REQUEST_FIXED_HEADER_LENGTH);
  const response = new Uint8Array(responseHeaderLength(16));
  response[0] = 1;
  const patterns = [
    "0000000000000000",
    "001fffffffffffff", // 2^53 - 1
    "0020000000000001", // 2^53 + 1: rounds to even
    "0020000000000003",
    "00000000ffffffff",
    "0000000100000000",
    "8000000000000000",
    "ffffffffffffffff",
    "7fffffffffffffff",
  ].map(hex);
  for (let i = 0; i < 2000; i++) patterns.push(crypto.getRandomValues(new Uint8Array(8)));
  for (const timestamp of patterns) {
    fixed.set(timestamp, 1);
    response.set(timestamp, 1);
    const expected = Number(new DataView(timestamp.buffer).getBigUint64(0));
    assert.equal(decodeRequestFixedHeader(fixed)!.timestamp, expected, toHex(timestamp));
    assert.equal(decodeResponseHeader(response, 16)!.timestamp, expected, toHex(timestamp));
  }
});

Deno.test("request fixed header: every strict prefix needs more; type 1 is refused", () => {
  const bytes = encodeRequestFixedHeader({ timestamp: 1, length: 2 });
  for (let n = 0; n < bytes.length; n++) {
    assert.equal(decodeRequestFixedHeader(bytes.subarray(0, n)), undefined, `prefix ${n}`);
  }
  const reflected = bytes.slice();
  reflected[0] = 1;
  assertProtocolError(
    () => decodeRequestFixedHeader(reflected),
    "ERR_CIPHER",
    "Invalid header type: expected 0, got 1",
  );
});

Deno.test("request variable header: round trip for each address type and padding 0 and max", async (t) => {
  for (const address of [TARGET, IPV4, IPV6]) {
    for (
      const [paddingLength, payload] of [
        [0, utf8("GET / HTTP/1.1\r\n")],
        [MAX_PADDING_LENGTH, new Uint8Array(0)],
        [1, new Uint8Array(0)],
        [MAX_PADDING_LENGTH, utf8("x")],
      ] as const
    ) {
      await t.step(`${address.type}, padding ${paddingLength}, payload ${payload.length}`, () => {
        const header = { address, paddingLength, payload };
        const bytes = encodeRequestVariableHeader(header);
        assert.equal(bytes.length, requestVariableHeaderLength(header));
        const decoded = decodeRequestVariableHeader(bytes);
        assert.deepEqual(decoded.address, address);
        assert.equal(decoded.paddingLength, paddingLength);
        assert.deepEqual(decoded.payload, payload);
      });
    }
  }
});

Deno.test("request variable header: the SIP022 rules are enforced on both sides", () => {
  const address = hex("01c00002010050"); // 192.0.2.1:80
  const build = (paddingLength: number, padding: number, payload: number) =>
    joined([
      address,
      Uint8Array.of(paddingLength >> 8, paddingLength & 0xff),
      new Uint8Array(padding),
      new Uint8Array(payload).fill(0x61),
    ]);
  // No payload and zero padding: the server must reject it, the client never builds it.
  assertProtocolError(
    () => decodeRequestVariableHeader(build(0, 0, 0)),
    "ERR_READ_ADDRESS",
    "neither initial payload nor padding",
  );
  assert.throws(
    () =>
      encodeRequestVariableHeader({ address: IPV4, paddingLength: 0, payload: new Uint8Array(0) }),
    RangeError,
  );
  // Padding 900 passes, 901 fails.
  assert.equal(decodeRequestVariableHeader(build(900, 900, 0)).paddingLength, 900);
  assertProtocolError(
    () => decodeRequestVariableHeader(build(901, 901, 0)),
    "ERR_READ_ADDRESS",
    "Padding too long: expected at most 900, got 901",
  );
  assert.throws(
    () =>
      encodeRequestVariableHeader({
        address: IPV4,
        paddingLength: 901,
        payload: new Uint8Array(0),
      }),
    RangeError,
  );
  // Padding running past the chunk.
  assertProtocolError(
    () => decodeRequestVariableHeader(build(10, 9, 0)),
    "ERR_READ_ADDRESS",
    "Padding runs past the end of the request header: expected at least 19, got 18",
  );
  // Padding length field cut off after the address, or half of it.
  assertProtocolError(
    () => decodeRequestVariableHeader(address),
    "ERR_READ_ADDRESS",
    "Request header too short: expected at least 9, got 7",
  );
  assertProtocolError(
    () => decodeRequestVariableHeader(joined([address, Uint8Array.of(0)])),
    "ERR_READ_ADDRESS",
    "expected at least 9, got 8",
  );
  // Address running past the chunk, at every length short of a whole address.
  for (let n = 0; n < address.length; n++) {
    assertProtocolError(
      () => decodeRequestVariableHeader(address.subarray(0, n)),
      "ERR_READ_ADDRESS",
      "Address runs past the end",
    );
  }
  assertProtocolError(() => decodeRequestVariableHeader(hex("05000000")), "ERR_READ_ADDRESS");
  // The whole header fits in one 0xFFFF chunk, no more.
  const fits = MAX_CHUNK_PAYLOAD_2022 - 7 - 2;
  const max = encodeRequestVariableHeader({
    address: IPV4,
    paddingLength: 0,
    payload: new Uint8Array(fits),
  });
  assert.equal(max.length, MAX_CHUNK_PAYLOAD_2022);
  assert.throws(
    () =>
      encodeRequestVariableHeader({
        address: IPV4,
        paddingLength: 0,
        payload: new Uint8Array(fits + 1),
      }),
    RangeError,
  );
});

Deno.test("response header: layout, round trip, prefixes and type", async (t) => {
  for (const saltSize of [16, 32]) {
    await t.step(`${saltSize}-byte salt`, () => {
      const requestSalt = crypto.getRandomValues(new Uint8Array(saltSize));
      assert.equal(responseHeaderLength(saltSize), saltSize === 16 ? 27 : 43);
      for (const length of [0, 1, 0xffff]) {
        const header = { timestamp: 1_700_000_000, requestSalt, length };
        const bytes = encodeResponseHeader(header);
        assert.equal(bytes.length, responseHeaderLength(saltSize));
        assert.equal(bytes[0], 1);
        assert.equal(toHex(bytes.subarray(1, 9)), "000000006553f100");
        assert.deepEqual(decodeResponseHeader(bytes, saltSize), header);
        for (let n = 0; n < bytes.length; n++) {
          assert.equal(decodeResponseHeader(bytes.subarray(0, n), saltSize), undefined);
        }
        const wrong = bytes.slice();
        wrong[0] = 0;
        assertProtocolError(() => decodeResponseHeader(wrong, saltSize), "ERR_CIPHER");
      }
      assert.throws(
        () => encodeResponseHeader({ timestamp: 0, requestSalt, length: 0x10000 }),
        RangeError,
      );
    });
  }
});

Deno.test("checkTimestamp() passes exactly 30 s off and fails 31 s off, with the skew", () => {
  const nowSeconds = NOW / 1000;
  for (const skew of [-30, -1, 0, 1, 30]) {
    assert.equal(checkTimestamp(nowSeconds + skew, NOW), skew);
  }
  for (const skew of [-31, 31, 3600]) {
    let thrown: unknown;
    try {
      checkTimestamp(nowSeconds + skew, NOW);
    } catch (error) {
      thrown = error;
    }
    assert.ok(thrown instanceof TimestampError);
    assert.ok(thrown instanceof ProtocolError);
    assert.equal(thrown.code, "ERR_REPLAY");
    assert.equal(thrown.skew, skew);
    assert.ok(thrown.message.includes(`clock skew of ${skew} s`), thrown.message);
  }
  assert.equal(MAX_TIMESTAMP_SKEW, 30);
  // Local time is floored to whole seconds: 30.999 s after the stamp still passes.
  assert.equal(checkTimestamp(nowSeconds, NOW + 30_999), -30);
});

// ---------------------------------------------------------------------------------------------
// First flight and request decoding

Deno.test("sealRequest() + RequestDecoder round-trip for every method, single and multi-user", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const payload = utf8("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
      const sealed = sealRequest(setup.client, TARGET, { payload, now });
      const info = setup.client.method;
      const eihs = setup.client.identityPsks.length * 16;
      assert.equal(
        sealed.bytes.length,
        info.saltSize + eihs + 11 + 16 + (15 + 2 + payload.length) + 16,
      );
      assert.deepEqual(sealed.bytes.subarray(0, info.saltSize), sealed.salt);
      const pool = new SaltPool();
      const decoder = new RequestDecoder(setup.server, { saltPool: pool, now });
      assert.equal(decoder.wanted, requestFixedReadLength(setup.server));
      const step = decoder.next(sealed.bytes);
      assert.equal(step.consumed, sealed.bytes.length);
      assert.deepEqual(step.payload, payload);
      const request = step.request!;
      assert.deepEqual(request.address, TARGET);
      assert.equal(request.paddingLength, 0);
      assert.equal(request.skew, 0);
      assert.deepEqual(request.requestSalt, sealed.salt);
      assert.deepEqual(request.psk, setup.client.userPsk);
      assert.equal(request.user?.name, setup.server.users ? "bob" : undefined);
      assert.equal(decoder.request, request);
      assert.equal(decoder.atChunkBoundary, true);
      assert.equal(pool.size, 1);

      // The stream goes on with ordinary chunks under the same ciphers.
      const more = sealChunks(sealed.cipher, utf8("more data"), MAX_CHUNK_PAYLOAD_2022);
      assert.deepEqual(drain(decoder, more).payloads, [utf8("more data")]);
    });
  }
});

Deno.test("requestFixedReadLength() is salt + EIH + 11 + 16", () => {
  const cases = [
    ["2022-blake3-aes-128-gcm", false, 43],
    ["2022-blake3-aes-256-gcm", false, 59],
    ["2022-blake3-chacha20-poly1305", false, 59],
    ["2022-blake3-aes-128-gcm", true, 59],
    ["2022-blake3-aes-256-gcm", true, 75],
  ] as const;
  for (const [name, withUsers, expected] of cases) {
    const info = method(name);
    const psk = toBase64(randomKey(info));
    const users = withUsers ? [{ name: "u", password: toBase64(randomKey(info)) }] : undefined;
    assert.equal(requestFixedReadLength(serverKeys2022(info, psk, users)), expected);
  }
});

Deno.test("sealRequest() pads 1..900 without payload and not at all with payload", () => {
  const [setup] = setups();
  const { client, server } = setup!;
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const sealed = sealRequest(client, IPV4, { now });
    const step = new RequestDecoder(server, { saltPool: new SaltPool(), now }).next(sealed.bytes);
    const padding = step.request!.paddingLength;
    assert.ok(padding >= 1 && padding <= MAX_PADDING_LENGTH, `padding ${padding}`);
    assert.equal(step.payload!.length, 0);
    seen.add(padding);
  }
  assert.ok(seen.size > 100, "padding lengths vary");
  const withPayload = sealRequest(client, IPV4, { payload: utf8("x"), now });
  const step = new RequestDecoder(server, { saltPool: new SaltPool(), now }).next(
    withPayload.bytes,
  );
  assert.equal(step.request!.paddingLength, 0);
  for (const paddingLength of [0, MAX_PADDING_LENGTH]) {
    const sealed = sealRequest(client, IPV4, { payload: utf8("x"), paddingLength, now });
    const s = new RequestDecoder(server, { saltPool: new SaltPool(), now }).next(sealed.bytes);
    assert.equal(s.request!.paddingLength, paddingLength);
  }
  assert.throws(() => sealRequest(client, IPV4, { paddingLength: 0, now }), RangeError);
  assert.throws(() => sealRequest(client, IPV4, { paddingLength: 901, now }), RangeError);
  assert.throws(() => sealRequest(client, IPV4, { salt: new Uint8Array(3), now }), RangeError);
});

Deno.test("sealRequest() moves payload beyond 65535 bytes into chunks of the same buffer", () => {
  const [setup] = setups();
  const { client, server } = setup!;
  const big = randomBytes(200_000);
  const sealed = sealRequest(client, TARGET, { payload: big, now });
  const decoder = new RequestDecoder(server, { saltPool: new SaltPool(), now });
  const { payloads, rest } = drain(decoder, sealed.bytes);
  assert.equal(rest.length, 0);
  assert.equal(payloads[0]!.length, MAX_CHUNK_PAYLOAD_2022 - 15 - 2);
  assert.deepEqual(joined(payloads), big);
});

Deno.test("every strict prefix of a first flight needs more and stores no salt", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const sealed = sealRequest(setup.client, TARGET, { payload: utf8("hello"), now });
      const fixedRead = requestFixedReadLength(setup.server);
      for (let n = 0; n < sealed.bytes.length; n++) {
        const pool = new SaltPool();
        const decoder = new RequestDecoder(setup.server, { saltPool: pool, now });
        const step = decoder.next(sealed.bytes.subarray(0, n));
        assert.equal(step.payload, null, `prefix ${n}`);
        assert.equal(step.consumed, n < fixedRead ? 0 : fixedRead, `prefix ${n}`);
        assert.equal(pool.size, n < fixedRead ? 0 : 1, `prefix ${n}`);
        assert.equal(decoder.atChunkBoundary, false);
        const fixed = openRequestFixedHeader(setup.server, sealed.bytes.subarray(0, n), {
          saltPool: new SaltPool(),
          now,
        });
        assert.equal(fixed === undefined, n < fixedRead, `prefix ${n}`);
      }
    });
  }
});

Deno.test("a first flight split at every offset decodes the same", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const payload = utf8("split me anywhere");
      const sealed = sealRequest(setup.client, IPV6, { payload, now });
      for (let cut = 0; cut <= sealed.bytes.length; cut++) {
        const decoder = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now });
        const first = drain(decoder, sealed.bytes.subarray(0, cut));
        const buffered = joined([first.rest, sealed.bytes.subarray(cut)]);
        const second = drain(decoder, buffered);
        assert.deepEqual(joined([...first.payloads, ...second.payloads]), payload, `cut ${cut}`);
        assert.equal(second.rest.length, 0);
        assert.deepEqual(decoder.request!.address, IPV6);
      }
    });
  }
});

Deno.test("every flipped byte of a first flight fails authentication", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const sealed = sealRequest(setup.client, TARGET, { payload: utf8("hi"), now });
      for (let i = 0; i < sealed.bytes.length; i++) {
        for (const bit of [0x01, 0x80]) {
          const tampered = sealed.bytes.slice();
          tampered[i]! ^= bit;
          const decoder = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now });
          assertProtocolError(() => decoder.next(tampered), "ERR_CIPHER");
        }
      }
    });
  }
});

Deno.test("timestamps 30 s off pass and 31 s off fail, with the skew and no salt stored", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      for (const skew of [-30, 30]) {
        const sealed = sealRequest(setup.client, TARGET, {
          payload: utf8("x"),
          now: () => NOW + skew * 1000,
        });
        const decoder = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now });
        assert.equal(decoder.next(sealed.bytes).request!.skew, skew);
      }
      for (const skew of [-31, 31]) {
        const sealed = sealRequest(setup.client, TARGET, {
          payload: utf8("x"),
          now: () => NOW + skew * 1000,
        });
        const pool = new SaltPool();
        const decoder = new RequestDecoder(setup.server, { saltPool: pool, now });
        const error = assertProtocolError(
          () => decoder.next(sealed.bytes),
          "ERR_REPLAY",
          `clock skew of ${skew} s`,
        );
        assert.ok(error instanceof TimestampError);
        assert.equal(error.skew, skew);
        assert.equal(pool.size, 0, "the salt is checked only after the timestamp");
      }
    });
  }
});

Deno.test("a replayed first flight is refused, and a full salt pool refuses new sessions", () => {
  const [setup] = setups();
  const { client, server } = setup!;
  const pool = new SaltPool({ capacity: 2 });
  const first = sealRequest(client, TARGET, { payload: utf8("x"), now });
  new RequestDecoder(server, { saltPool: pool, now }).next(first.bytes);
  assertProtocolError(
    () => new RequestDecoder(server, { saltPool: pool, now }).next(first.bytes),
    "ERR_REPLAY",
    "Replayed request",
  );
  new RequestDecoder(server, { saltPool: pool, now }).next(
    sealRequest(client, TARGET, { payload: utf8("y"), now }).bytes,
  );
  assertProtocolError(
    () =>
      new RequestDecoder(server, { saltPool: pool, now }).next(
        sealRequest(client, TARGET, { payload: utf8("z"), now }).bytes,
      ),
    "ERR_REPLAY",
    "Salt pool full: 2 salts held",
  );
});

Deno.test("wrong keys, unknown users and missing EIHs fail like a bad tag", () => {
  const info = method("2022-blake3-aes-256-gcm");
  const ipsk = toBase64(randomKey(info));
  const alice = toBase64(randomKey(info));
  const server = serverKeys2022(info, ipsk, [{ name: "alice", password: alice }]);
  const cases: [string, ClientKeys2022][] = [
    ["unknown user", clientKeys2022(info, `${ipsk}:${toBase64(randomKey(info))}`)],
    ["wrong iPSK", clientKeys2022(info, `${toBase64(randomKey(info))}:${alice}`)],
    ["no EIH", clientKeys2022(info, alice)],
  ];
  for (const [what, client] of cases) {
    const sealed = sealRequest(client, TARGET, { payload: utf8("x"), now });
    const pool = new SaltPool();
    assertProtocolError(
      () => new RequestDecoder(server, { saltPool: pool, now }).next(sealed.bytes),
      "ERR_CIPHER",
      undefined,
    );
    assert.equal(pool.size, 0, what);
  }
  const single = serverKeys2022(info, toBase64(randomKey(info)));
  const sealed = sealRequest(clientKeys2022(info, alice), TARGET, { payload: utf8("x"), now });
  assertProtocolError(
    () => new RequestDecoder(single, { saltPool: new SaltPool(), now }).next(sealed.bytes),
    "ERR_CIPHER",
    "Authentication failed",
  );
});

Deno.test("the server steps can be driven one read at a time (NOTES §7.4)", () => {
  const [setup] = setups();
  const { client, server } = setup!;
  const sealed = sealRequest(client, IPV4, { payload: utf8("abc"), now });
  const fixedRead = requestFixedReadLength(server);
  const pool = new SaltPool();
  const fixed = openRequestFixedHeader(server, sealed.bytes.subarray(0, fixedRead), {
    saltPool: pool,
    now,
  })!;
  assert.equal(fixed.variableHeaderLength, 7 + 2 + 3);
  assert.equal(pool.size, 1);
  const rest = sealed.bytes.subarray(fixedRead);
  assert.equal(rest.length, fixed.variableHeaderLength + 16);
  for (let n = 0; n < rest.length; n++) {
    assert.equal(openRequestVariableHeader(fixed, rest.subarray(0, n)), undefined);
  }
  const variable = openRequestVariableHeader(fixed, rest)!;
  assert.deepEqual(variable.address, IPV4);
  assert.deepEqual(variable.payload, utf8("abc"));
});

// ---------------------------------------------------------------------------------------------
// Response

Deno.test("sealResponse() + ResponseDecoder round-trip and continue with chunks", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const request = sealRequest(setup.client, TARGET, { payload: utf8("q"), now });
      const opened = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now })
        .next(request.bytes).request!;
      const response = sealResponse(opened, utf8("HTTP/1.1 200 OK\r\n"), { now });
      const info = setup.client.method;
      assert.equal(
        response.bytes.length,
        info.saltSize + responseHeaderLength(info.saltSize) + 16 + 17 + 16,
      );
      const decoder = new ResponseDecoder(request.response, { now });
      assert.equal(decoder.wanted, responseFixedReadLength(info));
      const step = decoder.next(response.bytes);
      assert.deepEqual(step.payload, utf8("HTTP/1.1 200 OK\r\n"));
      assert.equal(step.consumed, response.bytes.length);
      assert.equal(decoder.atChunkBoundary, true);
      const more = sealChunks(response.cipher, utf8("body"), MAX_CHUNK_PAYLOAD_2022);
      assert.deepEqual(drain(decoder, more).payloads, [utf8("body")]);
    });
  }
});

Deno.test("every strict prefix of a response start needs more; every split decodes", () => {
  const [setup] = setups();
  const { client } = setup!;
  const request = sealRequest(client, TARGET, { payload: utf8("q"), now });
  const response = sealResponse(request.response, utf8("pong"), { now });
  const headerRead = responseFixedReadLength(client.method);
  for (let n = 0; n < response.bytes.length; n++) {
    const decoder = new ResponseDecoder(request.response, { now });
    const step = decoder.next(response.bytes.subarray(0, n));
    assert.equal(step.payload, null, `prefix ${n}`);
    assert.equal(step.consumed, n < headerRead ? 0 : headerRead, `prefix ${n}`);
    assert.equal(
      openResponseHeader(request.response, response.bytes.subarray(0, n), { now }) === undefined,
      n < headerRead,
    );
    const rest = response.bytes.subarray(step.consumed, n);
    const second = drain(decoder, joined([rest, response.bytes.subarray(n)]));
    assert.deepEqual(second.payloads, [utf8("pong")], `split ${n}`);
  }
});

Deno.test("every flipped byte of a response start fails authentication", () => {
  const [setup] = setups();
  const request = sealRequest(setup!.client, TARGET, { payload: utf8("q"), now });
  const response = sealResponse(request.response, utf8("pong"), { now });
  for (let i = 0; i < response.bytes.length; i++) {
    const tampered = response.bytes.slice();
    tampered[i]! ^= 0x04;
    assertProtocolError(
      () => drain(new ResponseDecoder(request.response, { now }), tampered),
      "ERR_CIPHER",
    );
  }
});

Deno.test("the client refuses a response to another request or with a bad timestamp", () => {
  const [setup] = setups();
  const { client } = setup!;
  const request = sealRequest(client, TARGET, { payload: utf8("q"), now });
  const other = sealRequest(client, TARGET, { payload: utf8("q"), now });
  const response = sealResponse(other.response, utf8("pong"), { now });
  assertProtocolError(
    () => new ResponseDecoder(request.response, { now }).next(response.bytes),
    "ERR_REPLAY",
    "salt mismatch",
  );
  for (const skew of [-30, 30]) {
    const ok = sealResponse(request.response, utf8("pong"), { now: () => NOW + skew * 1000 });
    const step = new ResponseDecoder(request.response, { now }).next(ok.bytes);
    assert.equal(step.header!.skew, skew);
  }
  for (const skew of [-31, 31]) {
    const late = sealResponse(request.response, utf8("pong"), { now: () => NOW + skew * 1000 });
    assertProtocolError(
      () => new ResponseDecoder(request.response, { now }).next(late.bytes),
      "ERR_REPLAY",
      `clock skew of ${skew} s`,
    );
  }
});

Deno.test("sealRequest() and sealResponse() seal with a writer key made ahead, salt included", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const info = setup.client.method;
      const made = (psk: Uint8Array) => {
        const salt = crypto.getRandomValues(new Uint8Array(info.saltSize));
        return { salt, cipher: createTcpCipher2022(info, psk, salt) };
      };
      const requestKey = made(setup.client.userPsk);
      const request = sealRequest(setup.client, TARGET, {
        payload: utf8("q"),
        writerKey: requestKey,
        now,
      });
      assert.deepEqual(request.bytes.subarray(0, info.saltSize), requestKey.salt);
      assert.equal(request.salt, requestKey.salt, "the made salt is the request's copy");
      assert.equal(request.cipher, requestKey.cipher);
      const opened = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now })
        .next(request.bytes);
      assert.deepEqual(opened.payload, utf8("q"));
      const responseKey = made(opened.request!.psk);
      const response = sealResponse(opened.request!, utf8("a"), { writerKey: responseKey, now });
      assert.deepEqual(response.bytes.subarray(0, info.saltSize), responseKey.salt);
      assert.equal(response.salt, responseKey.salt);
      assert.equal(response.cipher, responseKey.cipher);
      const decoder = new ResponseDecoder(request.response, { now });
      assert.deepEqual(decoder.next(response.bytes).payload, utf8("a"));
      const short = { salt: new Uint8Array(info.saltSize - 1), cipher: requestKey.cipher };
      assert.throws(() => sealRequest(setup.client, TARGET, { writerKey: short }), RangeError);
      assert.throws(
        () => sealResponse(opened.request!, utf8("a"), { writerKey: short }),
        RangeError,
      );
    });
  }
});

Deno.test("sealResponse() refuses an empty first payload and splits a large one", () => {
  const [setup] = setups();
  const request = sealRequest(setup!.client, TARGET, { payload: utf8("q"), now });
  assert.throws(() => sealResponse(request.response, new Uint8Array(0)), RangeError);
  const payload = randomBytes(2 * 65536 + 4);
  const response = sealResponse(request.response, payload, { now });
  const { payloads, rest } = drain(new ResponseDecoder(request.response, { now }), response.bytes);
  assert.equal(rest.length, 0);
  assert.equal(payloads[0]!.length, MAX_CHUNK_PAYLOAD_2022);
  assert.deepEqual(joined(payloads), payload);
});

Deno.test("a server response reflected back to the server fails authentication", () => {
  for (const setup of setups()) {
    const request = sealRequest(setup.client, TARGET, { payload: utf8("q"), now });
    const opened = new RequestDecoder(setup.server, { saltPool: new SaltPool(), now })
      .next(request.bytes).request!;
    const response = sealResponse(opened, utf8("pong"), { now });
    if (setup.server.users !== undefined) continue; // no EIH in a response: fails earlier
    assertProtocolError(
      () =>
        new RequestDecoder(setup.server, { saltPool: new SaltPool(), now }).next(response.bytes),
      "ERR_CIPHER",
    );
  }
});

Deno.test("createTcpCipher2022() keys AeadCipher with the BLAKE3 session subkey", () => {
  const info = method("2022-blake3-aes-256-gcm");
  const psk = randomKey(info);
  const salt = randomKey(info);
  const a = createTcpCipher2022(info, psk, salt);
  const b = createTcpCipher2022(info, psk, salt);
  assert.deepEqual(b.open(a.seal(utf8("one"))), utf8("one"));
  assert.deepEqual(b.open(a.seal(utf8("two"))), utf8("two"));
  assert.throws(() => createTcpCipher2022(method("aes-256-gcm"), psk, salt), RangeError);
});

Deno.test("sealRequest() and sealResponse() write exactly salt ‖ EIHs ‖ sealed headers ‖ chunks", async (t) => {
  // The first flights are assembled in one buffer; here they are built again part by part from
  // the exported encoders with a fresh cipher, byte for byte: every method, one user and several,
  // short payloads, an empty one (padding) and one that overflows into chunks.
  const payloads = [utf8("x"), new Uint8Array(0), randomBytes(MAX_CHUNK_PAYLOAD_2022 + 100)];
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const info = setup.client.method;
      for (const payload of payloads) {
        for (const target of [TARGET, IPV4, IPV6]) {
          const salt = randomBytes(info.saltSize);
          const paddingLength = payload.length === 0 ? 7 : 0;
          const sealed = sealRequest(setup.client, target, { payload, salt, paddingLength, now });
          const headerBase = requestVariableHeaderLength({
            address: target,
            paddingLength,
            payload: EMPTY,
          });
          const inHeader = Math.min(payload.length, MAX_CHUNK_PAYLOAD_2022 - headerBase);
          const variable = encodeRequestVariableHeader({
            address: target,
            paddingLength,
            payload: payload.subarray(0, inHeader),
          });
          const cipher = createTcpCipher2022(info, setup.client.userPsk, salt);
          const fixed = encodeRequestFixedHeader({
            timestamp: NOW / 1000,
            length: variable.length,
          });
          const parts = [
            salt,
            sealTcpIdentityHeaders(setup.client, salt),
            cipher.seal(fixed),
            cipher.seal(variable),
            sealChunks(cipher, payload.subarray(inHeader), MAX_CHUNK_PAYLOAD_2022),
          ];
          // Padding is random: compare around it (its sealed bytes differ), and the rest exactly.
          const expected = joined(parts);
          assert.equal(sealed.bytes.length, expected.length);
          if (paddingLength === 0) assert.deepEqual(sealed.bytes, expected);
          else {
            const before = info.saltSize + setup.client.identityPsks.length * 16 + 11 + 16;
            assert.deepEqual(sealed.bytes.subarray(0, before), expected.subarray(0, before));
          }
          assert.deepEqual(sealed.salt, salt);
          assert.deepEqual(sealed.response.requestSalt, salt);
          assert.notEqual(sealed.salt.buffer, sealed.bytes.buffer, "the salt is a copy");
        }
        if (payload.length === 0) continue;
        const responseSalt = randomBytes(info.saltSize);
        const context = {
          method: info,
          psk: setup.client.userPsk,
          requestSalt: randomBytes(info.saltSize),
        };
        const response = sealResponse(context, payload, { salt: responseSalt, now });
        const first = payload.subarray(0, MAX_CHUNK_PAYLOAD_2022);
        const cipher = createTcpCipher2022(info, setup.client.userPsk, responseSalt);
        const header = encodeResponseHeader({
          timestamp: NOW / 1000,
          requestSalt: context.requestSalt,
          length: first.length,
        });
        const expected = joined([
          responseSalt,
          cipher.seal(header),
          cipher.seal(first),
          sealChunks(cipher, payload.subarray(first.length), MAX_CHUNK_PAYLOAD_2022),
        ]);
        assert.deepEqual(response.bytes, expected);
        assert.deepEqual(response.salt, responseSalt);
        assert.notEqual(response.salt.buffer, response.bytes.buffer, "the salt is a copy");
        const shortSalt = { ...context, requestSalt: context.requestSalt.subarray(1) };
        assert.throws(() => sealResponse(shortSalt, payload, { now }), RangeError);
      }
    });
  }
});

const EMPTY = new Uint8Array(0);
