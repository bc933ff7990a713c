import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { deriveMasterKey, evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod, METHOD_NAMES, type MethodInfo } from "../../crypto/methods.ts";
import { type Address, encodeAddress } from "../../protocol/address.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { ReplayFilter } from "../../protocol/replay_filter.ts";
import { clientFramings, serverFramings } from "../../protocol/session_framings.ts";
import { streamClientFraming, streamServerFraming } from "../../protocol/stream_framing_legacy.ts";
import {
  decodeUdpPlaintext,
  encodeUdpPlaintext,
  openUdpPacket,
  openUdpRequest,
  sealUdpPacket,
  supportsUdp,
  udpPacketOverhead,
} from "../../protocol/udp_packet.ts";
import { methodUnavailableReason } from "../../crypto/method_support.ts";
import { createStreamCipher } from "../../crypto/stream_cipher.ts";
import { hex, loadVectors, utf8 } from "../_vectors.ts";
import { codeOf, openAll, payloadOf } from "./_framing.ts";

/** The stream methods the crypto backend in use can run (all of them with OpenSSL). */
const METHODS: MethodInfo[] = METHOD_NAMES.map((name) => findMethod(name)!).filter((method) => {
  if (method.family !== "stream") return false;
  const reason = methodUnavailableReason(method);
  if (reason !== undefined) console.log(`skipping ${method.name}: ${reason}`);
  return reason === undefined;
});
const TARGET: Address = { type: "domain", host: "example.com", port: 8443 };
const PASSWORD = "stream-framing-test";

Deno.test("stream framings carry a request both ways with every method, cut at every offset", async (t) => {
  for (const method of METHODS) {
    await t.step(method.name, () => {
      const key = deriveMasterKey(method, PASSWORD);
      const payload = crypto.getRandomValues(new Uint8Array(40));
      const flight = streamClientFraming(method, key, TARGET).seal(payload);
      const header = encodeAddress(TARGET);
      assertEquals(flight.length, method.saltSize + header.length + payload.length);
      for (let cut = 0; cut <= flight.length; cut++) {
        const server = streamServerFraming(method, key);
        assertEquals(server.atChunkBoundary, false);
        const { steps, leftover } = openAll(server, flight, [cut]);
        assertEquals(leftover, 0);
        const requests = steps.filter((step) => step.request !== undefined);
        assertEquals(requests.length, 1, `one request at cut ${cut}`);
        assertEquals(requests[0]!.request!.address, TARGET);
        assertEquals(payloadOf(steps), payload, `payload at cut ${cut}`);
        assertOk(server.atChunkBoundary);
      }
    });
  }
});

Deno.test("stream framings keep one keystream across many writes in both directions", async (t) => {
  for (const method of METHODS) {
    await t.step(method.name, () => {
      const key = deriveMasterKey(method, PASSWORD);
      const client = streamClientFraming(method, key, TARGET);
      const server = streamServerFraming(method, key);
      const sizes = [0, 1, 5, 64, 63, 200, 1, 3000];
      const sent: number[] = [];
      const wire: number[] = [];
      const answers: number[] = [];
      const answerWire: number[] = [];
      for (const [i, size] of sizes.entries()) {
        const piece = crypto.getRandomValues(new Uint8Array(size));
        sent.push(...piece);
        wire.push(...client.seal(piece));
        const answer = new Uint8Array(size).fill(i);
        answers.push(...answer);
        answerWire.push(...server.seal(answer));
      }
      // The client's first seal may be an empty write: it still sends IV and header.
      assertEquals(wire.length, method.saltSize + encodeAddress(TARGET).length + sent.length);
      assertEquals(answerWire.length, method.saltSize + answers.length);
      const cuts = [3, 17, 100, 101, 2500];
      const up = openAll(server, Uint8Array.from(wire), cuts);
      assertEquals(payloadOf(up.steps), Uint8Array.from(sent));
      const down = openAll(client, Uint8Array.from(answerWire), cuts);
      assertEquals(payloadOf(down.steps), Uint8Array.from(answers));
      assertOk(client.atChunkBoundary);
    });
  }
});

Deno.test("a stream server refuses a replayed IV with ERR_REPLAY, and its own IVs too", async (t) => {
  for (const method of METHODS) {
    await t.step(method.name, () => {
      const key = deriveMasterKey(method, PASSWORD);
      const replayFilter = new ReplayFilter();
      const flight = streamClientFraming(method, key, TARGET).seal(utf8("GET /"));
      const first = streamServerFraming(method, key, { replayFilter });
      assertEquals(openAll(first, flight).steps[0]?.request?.address, TARGET);
      const again = () => streamServerFraming(method, key, { replayFilter }).open(flight);
      if (method.stream === "table") {
        // No IV, nothing to remember: the same bytes open again.
        assertEquals(again().request?.address, TARGET);
        assertEquals(replayFilter.size, 0);
        return;
      }
      assertEquals(codeOf(again), "ERR_REPLAY");
      // A server's answer reflected back at it: its IV is remembered as its own.
      const answer = first.seal(encodeAddress(TARGET));
      const reflected = () => streamServerFraming(method, key, { replayFilter }).open(answer);
      assertEquals(codeOf(reflected), "ERR_REPLAY");
      // A new connection with a new IV is fine.
      const fresh = streamClientFraming(method, key, TARGET).seal(utf8("GET /"));
      const step = streamServerFraming(method, key, { replayFilter }).open(fresh);
      assertEquals(step.request?.address, TARGET);
    });
  }
});

Deno.test("a stream server turns an address header that does not parse into ERR_CIPHER", async (t) => {
  for (const method of METHODS) {
    await t.step(method.name, () => {
      const key = deriveMasterKey(method, PASSWORD);
      const replayFilter = new ReplayFilter();
      // What a wrong key or a probe looks like once decrypted: an unknown ATYP, an empty name.
      for (const junk of [Uint8Array.of(0x07, 1, 2, 3), Uint8Array.of(0x03, 0, 0, 80)]) {
        const iv = crypto.getRandomValues(new Uint8Array(method.saltSize));
        const flight = new Uint8Array(iv.length + junk.length);
        flight.set(iv);
        using cipher = createStreamCipher(method.stream!, key, iv);
        cipher.updateInto(junk, flight.subarray(iv.length));
        const server = streamServerFraming(method, key, { replayFilter });
        assertEquals(codeOf(() => openAll(server, flight)), "ERR_CIPHER");
      }
      // Junk never reaches the replay filter.
      assertEquals(replayFilter.size, 0);
    });
  }
});

Deno.test("a stream client decrypts the published server streams after the IV", async (t) => {
  const { vectors } = await loadVectors("stream_ciphers.json");
  for (const method of METHODS) {
    // deno-lint-ignore no-explicit-any
    const cases = vectors.filter((v: any) => v.method === method.name);
    for (const [i, v] of cases.entries()) {
      await t.step(`${method.name} #${i}`, () => {
        const key = deriveMasterKey(method, v.password_utf8);
        assertEquals(key, evpBytesToKey(v.password_utf8, method.keySize));
        const client = clientFramings(method, v.password_utf8).session(TARGET);
        const { steps } = openAll(client, hex(v.ciphertext_hex), [1, method.saltSize + 1]);
        assertEquals(new TextDecoder().decode(payloadOf(steps)), v.plaintext_utf8);
      });
    }
  }
});

Deno.test("serverFramings() and clientFramings() give matching stream sessions; table keys with the raw password", async (t) => {
  for (const method of METHODS) {
    await t.step(method.name, () => {
      const server = serverFramings(method, PASSWORD);
      const flight = clientFramings(method, PASSWORD).session(TARGET).seal(utf8("hi"));
      const step = openAll(server.session("127.0.0.1"), flight).steps;
      assertEquals(step[0]?.request?.address, TARGET);
      assertEquals(payloadOf(step), utf8("hi"));
      // Another password does not give the same request back.
      const other = clientFramings(method, `${PASSWORD}!`).session(TARGET).seal(utf8("hi"));
      try {
        const steps = openAll(server.session(), other).steps;
        assertOk(steps[0]?.request?.address.host !== TARGET.host, "a wrong key opened the request");
      } catch (error) {
        assertOk(error instanceof ProtocolError, String(error));
      }
      // Multiple users need AEAD.
      assertThrows(() => serverFramings(method, "", { users: [{ name: "a", password: "b" }] }));
    });
  }
  // The published `table` encryption of "hello world" under "password" (no IV, no EVP).
  const table = findMethod("table")!;
  const { vectors } = await loadVectors("table_cipher.json");
  // deno-lint-ignore no-explicit-any
  const v = vectors.find((item: any) => item.ciphertext_bytes);
  const packet = sealUdpPacket(
    table,
    deriveMasterKey(table, v.password_utf8),
    utf8(v.plaintext_utf8),
  );
  assertEquals(Array.from(packet), v.ciphertext_bytes);
});

Deno.test("openUdpRequest() keeps ERR_READ_ADDRESS for an AEAD packet whose header does not parse", () => {
  const method = findMethod("aes-128-gcm")!;
  const key = evpBytesToKey(PASSWORD, method.keySize);
  const packet = sealUdpPacket(method, key, Uint8Array.of(0x09, 1, 2, 3));
  assertEquals(codeOf(() => openUdpRequest(method, key, packet)), "ERR_READ_ADDRESS");
});

Deno.test("a client's IV prefix starts the IV of its first flight", () => {
  const method = findMethod("aes-256-ctr")!;
  const prefix = Uint8Array.of(0x16, 0x03, 0x01);
  const flight = clientFramings(method, PASSWORD, prefix).session(TARGET).seal(utf8("x"));
  assertEquals(flight.subarray(0, 3), prefix);
  const step = openAll(serverFramings(method, PASSWORD).session(), flight).steps[0];
  assertEquals(step?.request?.address, TARGET);
});

Deno.test("sealUdpPacket() and openUdpPacket() round-trip every stream method with a fresh IV", async (t) => {
  const from: Address = { type: "ipv4", host: "10.1.2.3", port: 53 };
  for (const method of METHODS) {
    await t.step(method.name, () => {
      assertOk(supportsUdp(method));
      assertEquals(udpPacketOverhead(method), method.saltSize);
      const key = deriveMasterKey(method, PASSWORD);
      for (const size of [0, 1, 100, 1400, 65_000]) {
        const payload = crypto.getRandomValues(new Uint8Array(Math.min(size, 65_536)));
        const plain = encodeUdpPlaintext(from, payload);
        const packet = sealUdpPacket(method, key, plain);
        assertEquals(packet.length, plain.length + method.saltSize);
        const opened = decodeUdpPlaintext(openUdpPacket(method, key, packet));
        assertEquals(opened.address, from);
        assertEquals(opened.payload, payload);
        // Into a reused buffer, with an IV prefix.
        const out = new Uint8Array(plain.length + method.saltSize + 10);
        const prefix = method.saltSize >= 16 ? Uint8Array.of(1, 2) : undefined;
        const view = sealUdpPacket(method, key, plain, out, prefix);
        if (prefix) assertEquals(view.subarray(0, 2), prefix);
        assertEquals(openUdpPacket(method, key, view), plain);
      }
      if (method.saltSize > 0) {
        // Each packet has its own random IV: the same plaintext never seals the same way.
        const plain = encodeUdpPlaintext(from, utf8("same"));
        const a = sealUdpPacket(method, key, plain);
        const b = sealUdpPacket(method, key, plain);
        assertOk(a.some((byte, i) => byte !== b[i]));
        // Too short for an IV and a byte.
        const short = new Uint8Array(method.saltSize);
        assertEquals(codeOf(() => openUdpPacket(method, key, short)), "ERR_CIPHER");
      }
      // A header that does not parse (a wrong key, junk) is ERR_CIPHER, as for TCP.
      const junk = sealUdpPacket(method, key, Uint8Array.of(0x09, 1, 2, 3));
      assertEquals(codeOf(() => openUdpRequest(method, key, junk)), "ERR_CIPHER");
      assertEquals(
        openUdpRequest(
          method,
          key,
          sealUdpPacket(method, key, encodeUdpPlaintext(from, utf8("ok"))),
        ).address,
        from,
      );
    });
  }
});
