import assert from "node:assert/strict";
import type { AeadPrimitive } from "../../crypto/aead_primitive.ts";
import type { Address } from "../../protocol/address.ts";
import {
  type ClientKeys2022,
  clientKeys2022,
  type ServerKeys2022,
  serverKeys2022,
} from "../../protocol/aead2022_identity.ts";
import { TimestampError } from "../../protocol/aead2022_time.ts";
import {
  createUdpSessionAead,
  decodeSeparateHeader,
  decodeUdpBody,
  encodeSeparateHeader,
  encodeUdpBody,
  openClientPacket,
  openServerPacket,
  randomSessionId,
  sealClientPacket,
  sealServerPacket,
  SEPARATE_HEADER_LENGTH,
  udpBodyLength,
} from "../../protocol/aead2022_udp.ts";
import { SlidingWindow } from "../../protocol/sliding_window.ts";
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

const NOW = 1_700_000_000_000;
const now = () => NOW;
const TARGET: Address = { type: "ipv4", host: "198.51.100.7", port: 53 };
const SOURCE: Address = { type: "ipv6", host: "2001:db8::53", port: 53 };
const DNS_QUERY = hex("abcd01000001000000000000076578616d706c6503636f6d0000010001");

interface Setup {
  name: string;
  client: ClientKeys2022;
  server: ServerKeys2022;
}

function setups(): Setup[] {
  const out: Setup[] = [];
  for (const name of METHODS_2022) {
    const info = method(name);
    const psk = toBase64(randomKey(info));
    out.push({ name, client: clientKeys2022(info, psk), server: serverKeys2022(info, psk) });
    if (name.includes("aes")) {
      const ipsk = toBase64(randomKey(info));
      const users = ["alice", "bob", "carol"].map((user) => ({
        name: user,
        password: toBase64(randomKey(info)),
      }));
      out.push({
        name: `${name} with EIH`,
        client: clientKeys2022(info, `${ipsk}:${users[2]!.password}`),
        server: serverKeys2022(info, ipsk, users),
      });
    }
  }
  return out;
}

Deno.test("separate header: layout, round trip, boundaries and prefixes", () => {
  const header = { sessionId: 0x0102030405060708n, packetId: 0xfffffffffffffffen };
  const bytes = encodeSeparateHeader(header);
  assert.equal(toHex(bytes), "0102030405060708fffffffffffffffe");
  assert.deepEqual(decodeSeparateHeader(bytes), header);
  for (const id of [0n, 1n, (1n << 64n) - 1n]) {
    assert.deepEqual(
      decodeSeparateHeader(encodeSeparateHeader({ sessionId: id, packetId: id })),
      { sessionId: id, packetId: id },
    );
  }
  for (let n = 0; n < SEPARATE_HEADER_LENGTH; n++) {
    assert.equal(decodeSeparateHeader(bytes.subarray(0, n)), undefined);
  }
  assert.throws(() => encodeSeparateHeader({ sessionId: 1n << 64n, packetId: 0n }), RangeError);
  assert.throws(() => encodeSeparateHeader({ sessionId: 0n, packetId: -1n }), RangeError);
});

Deno.test("UDP bodies: layout and round trip in both directions, padding 0 and max", async (t) => {
  for (const clientSessionId of [undefined, 0x1122334455667788n]) {
    for (const paddingLength of [0, 1, 900]) {
      await t.step(
        `${clientSessionId ? "server" : "client"} body, padding ${paddingLength}`,
        () => {
          const base = {
            timestamp: 1_700_000_000,
            paddingLength,
            address: TARGET,
            payload: DNS_QUERY,
          };
          const body = clientSessionId === undefined ? base : { ...base, clientSessionId };
          const bytes = encodeUdpBody(body);
          assert.equal(bytes.length, udpBodyLength(body));
          assert.equal(bytes[0], clientSessionId === undefined ? 0 : 1);
          assert.equal(toHex(bytes.subarray(1, 9)), "000000006553f100");
          if (clientSessionId !== undefined) {
            assert.equal(toHex(bytes.subarray(9, 17)), "1122334455667788");
          }
          const decoded = decodeUdpBody(bytes, clientSessionId === undefined ? "client" : "server");
          assert.deepEqual(decoded, body);
        },
      );
    }
  }
  assert.throws(
    () => encodeUdpBody({ timestamp: 0, paddingLength: 901, address: TARGET, payload: DNS_QUERY }),
    RangeError,
  );
});

Deno.test("UDP bodies: type, truncation, padding and address errors", () => {
  const body = encodeUdpBody({
    timestamp: 1,
    paddingLength: 3,
    address: TARGET,
    payload: new Uint8Array(0),
  });
  assertProtocolError(
    () => decodeUdpBody(body, "server"),
    "ERR_CIPHER",
    "Invalid packet type: expected 1, got 0",
  );
  // Every truncation short of the address's end fails; the payload may be empty.
  for (let n = 0; n < body.length; n++) {
    assert.throws(() => decodeUdpBody(body.subarray(0, n), "client"), `length ${n}`);
  }
  assertProtocolError(
    () => decodeUdpBody(body.subarray(0, 12), "client"),
    "ERR_READ_ADDRESS",
    "Padding runs past the end of the packet: expected at least 14, got 12",
  );
  assertProtocolError(
    () => decodeUdpBody(body.subarray(0, 16), "client"),
    "ERR_READ_ADDRESS",
    "Address runs past the end",
  );
  const tooMuch = body.slice();
  tooMuch[9] = 0x03;
  tooMuch[10] = 0x85; // 901
  assertProtocolError(
    () => decodeUdpBody(tooMuch, "client"),
    "ERR_READ_ADDRESS",
    "Padding too long: expected at most 900, got 901",
  );
  assert.equal(decodeUdpBody(body, "client").payload.length, 0);
});

Deno.test("UDP round trips for all three methods, with and without EIH", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const sessionId = randomSessionId();
      for (
        const [packetId, paddingLength, payload] of [
          [0n, 0, DNS_QUERY],
          [1n, 900, new Uint8Array(0)],
          [(1n << 63n) + 5n, 17, utf8("x")],
        ] as const
      ) {
        const packet = sealClientPacket(
          setup.client,
          { sessionId, packetId, address: TARGET, payload, paddingLength },
          { now },
        );
        const eih = setup.client.identityPsks.length * 16;
        const aes = setup.client.method.algorithm !== "chacha20-poly1305";
        const overhead = aes ? 16 + eih + 16 : 24 + 16 + 16;
        assert.equal(packet.length, overhead + 11 + paddingLength + 7 + payload.length);
        const opened = openClientPacket(setup.server, packet, { now });
        assert.equal(opened.sessionId, sessionId);
        assert.equal(opened.packetId, packetId);
        assert.deepEqual(opened.address, TARGET);
        assert.deepEqual(opened.payload, payload);
        assert.equal(opened.paddingLength, paddingLength);
        assert.equal(opened.skew, 0);
        assert.deepEqual(opened.psk, setup.client.userPsk);
        assert.equal(opened.user?.name, setup.server.users ? "carol" : undefined);

        // The reply: the server's own session, the user's PSK, no EIH.
        const serverSessionId = randomSessionId();
        const reply = sealServerPacket(setup.server.method, opened.psk, {
          sessionId: serverSessionId,
          packetId,
          clientSessionId: sessionId,
          address: SOURCE,
          payload: utf8("answer"),
        }, { now });
        const back = openServerPacket(setup.client, reply, { now, clientSessionId: sessionId });
        assert.equal(back.sessionId, serverSessionId);
        assert.equal(back.packetId, packetId);
        assert.equal(back.clientSessionId, sessionId);
        assert.deepEqual(back.address, SOURCE);
        assert.deepEqual(back.payload, utf8("answer"));
        assertProtocolError(
          () => openServerPacket(setup.client, reply, { now, clientSessionId: sessionId + 1n }),
          "ERR_REPLAY",
          "another session",
        );
      }
    });
  }
});

Deno.test("every flipped byte of a UDP packet fails authentication", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      const sessionId = randomSessionId();
      const packet = sealClientPacket(setup.client, {
        sessionId,
        packetId: 7n,
        address: TARGET,
        payload: utf8("ping"),
      }, { now });
      for (let i = 0; i < packet.length; i++) {
        const bad = packet.slice();
        bad[i]! ^= 0x10;
        assertProtocolError(() => openClientPacket(setup.server, bad, { now }), "ERR_CIPHER");
      }
      for (let n = 0; n < packet.length; n++) {
        assertProtocolError(
          () => openClientPacket(setup.server, packet.subarray(0, n), { now }),
          "ERR_CIPHER",
        );
      }
      const reply = sealServerPacket(setup.server.method, setup.client.userPsk, {
        sessionId: 9n,
        packetId: 0n,
        clientSessionId: sessionId,
        address: SOURCE,
        payload: utf8("pong"),
      }, { now });
      for (let i = 0; i < reply.length; i++) {
        const bad = reply.slice();
        bad[i]! ^= 0x10;
        assertProtocolError(() => openServerPacket(setup.client, bad, { now }), "ERR_CIPHER");
      }
    });
  }
});

Deno.test("UDP timestamps 30 s off pass and 31 s off fail with the skew", async (t) => {
  for (const setup of setups()) {
    await t.step(setup.name, () => {
      for (const skew of [-31, -30, 30, 31]) {
        const clock = () => NOW + skew * 1000;
        const packet = sealClientPacket(setup.client, {
          sessionId: 1n,
          packetId: 0n,
          address: TARGET,
          payload: utf8("x"),
        }, { now: clock });
        const reply = sealServerPacket(setup.server.method, setup.client.userPsk, {
          sessionId: 2n,
          packetId: 0n,
          clientSessionId: 1n,
          address: SOURCE,
          payload: utf8("y"),
        }, { now: clock });
        if (Math.abs(skew) <= 30) {
          assert.equal(openClientPacket(setup.server, packet, { now }).skew, skew);
          assert.equal(openServerPacket(setup.client, reply, { now }).skew, skew);
        } else {
          for (
            const open of [
              () => openClientPacket(setup.server, packet, { now }),
              () => openServerPacket(setup.client, reply, { now }),
            ]
          ) {
            const error = assertProtocolError(open, "ERR_REPLAY", `clock skew of ${skew} s`);
            assert.ok(error instanceof TimestampError);
            assert.equal(error.skew, skew);
          }
        }
      }
    });
  }
});

Deno.test("UDP packets are direction-bound and key-bound", () => {
  for (const setup of setups()) {
    const packet = sealClientPacket(setup.client, {
      sessionId: 5n,
      packetId: 0n,
      address: TARGET,
      payload: utf8("x"),
    }, { now });
    // A client packet reflected to a client: wrong type (or, with EIH, wrong layout).
    const asReply = setup.server.users === undefined ? packet : undefined;
    if (asReply) {
      assertProtocolError(
        () => openServerPacket(setup.client, asReply, { now }),
        "ERR_CIPHER",
        "Invalid packet type: expected 1, got 0",
      );
    }
    const other = serverKeys2022(setup.server.method, toBase64(randomKey(setup.server.method)));
    assertProtocolError(() => openClientPacket(other, packet, { now }), "ERR_CIPHER");
  }
});

Deno.test("session AEADs can be cached and the window drops replays after opening", () => {
  const setup = setups()[0]!;
  const cache = new Map<string, AeadPrimitive>();
  let derived = 0;
  const aeadFor = (sessionId: bigint, psk: Uint8Array) => {
    const key = `${sessionId}:${toHex(psk)}`;
    let aead = cache.get(key);
    if (aead === undefined) {
      derived++;
      aead = createUdpSessionAead(setup.server.method, psk, sessionId);
      cache.set(key, aead);
    }
    return aead;
  };
  const sessionId = randomSessionId();
  const sealer = createUdpSessionAead(setup.client.method, setup.client.userPsk, sessionId);
  const window = new SlidingWindow();
  const accepted: bigint[] = [];
  for (const packetId of [0n, 1n, 2n, 1n, 5n, 3n, 5n]) {
    const packet = sealClientPacket(setup.client, {
      sessionId,
      packetId,
      address: TARGET,
      payload: utf8(`p${packetId}`),
    }, { now, aead: sealer });
    const opened = openClientPacket(setup.server, packet, { now, aeadFor });
    if (window.accept(opened.packetId)) accepted.push(opened.packetId);
  }
  assert.deepEqual(accepted, [0n, 1n, 2n, 5n, 3n]);
  assert.equal(derived, 1);
  assert.throws(
    () => createUdpSessionAead(method("2022-blake3-chacha20-poly1305"), new Uint8Array(32), 1n),
    RangeError,
  );
});

Deno.test("randomSessionId() is a non-zero u64", () => {
  const ids = new Set<bigint>();
  for (let i = 0; i < 100; i++) {
    const id = randomSessionId();
    assert.ok(id > 0n && id < 1n << 64n);
    ids.add(id);
  }
  assert.equal(ids.size, 100);
});

Deno.test("the ChaCha method refuses identity headers", () => {
  const info = method("2022-blake3-chacha20-poly1305");
  const keys = {
    method: info,
    userPsk: randomKey(info),
    identityPsks: [randomKey(info)],
  };
  assert.throws(
    () =>
      sealClientPacket(keys, { sessionId: 1n, packetId: 0n, address: TARGET, payload: DNS_QUERY }),
    RangeError,
  );
});
