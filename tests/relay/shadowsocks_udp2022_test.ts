import assert from "node:assert/strict";
import { InvalidPskError } from "../../crypto/kdf2022.ts";
import { findMethod, type MethodInfo } from "../../crypto/methods.ts";
import type { Address } from "../../protocol/address.ts";
import { clientKeys2022, serverKeys2022 } from "../../protocol/aead2022_identity.ts";
import {
  openClientPacket,
  openServerPacket,
  randomSessionId,
  sealClientPacket,
  sealServerPacket,
} from "../../protocol/aead2022_udp.ts";
import { encodeUdpPlaintext } from "../../protocol/udp_packet.ts";
import { createServerUdpCodec, createUdpClientCipher } from "../../relay/shadowsocks_udp.ts";
import {
  type ServerSession2022,
  serverUdpCodec2022,
  udpClientSession2022,
} from "../../relay/shadowsocks_udp2022.ts";
import { assertProtocolError, METHODS_2022, toBase64 } from "../crypto/_vectors2022.ts";

const TARGET: Address = { type: "ipv4", host: "192.0.2.7", port: 53 };
const ECHO: Deno.NetAddr = { transport: "udp", hostname: "192.0.2.7", port: 53 };

function methodOf(name: string): MethodInfo {
  const info = findMethod(name);
  assert.ok(info);
  return info;
}

function psk(info: MethodInfo): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(info.keySize)));
}

function source(port: number): Deno.NetAddr {
  return { transport: "udp", hostname: "127.0.0.1", port };
}

/** A server codec with a session store standing in for the relay's NAT table. */
function serverHarness(
  info: MethodInfo,
  password: string,
  users?: { name: string; password: string }[],
) {
  const codec = serverUdpCodec2022(serverKeys2022(info, password, users));
  const sessions = new Map<string, ServerSession2022>();
  const receive = (packet: Uint8Array, from: Deno.NetAddr) => {
    const unwrapped = codec.unwrap(packet, from, (key) => sessions.get(key));
    sessions.set(unwrapped.session.key, unwrapped.session);
    return unwrapped;
  };
  return { codec, sessions, receive };
}

for (const name of METHODS_2022) {
  Deno.test(`serverUdpCodec2022() routes by session ID and replies to the latest source with ${name}`, () => {
    const info = methodOf(name);
    const key = psk(info);
    const keys = clientKeys2022(info, key);
    const server = serverHarness(info, key);
    const sessionId = randomSessionId();
    const seal = (packetId: bigint, payload: number) =>
      sealClientPacket(keys, {
        sessionId,
        packetId,
        address: TARGET,
        payload: Uint8Array.of(payload),
      });

    const first = server.receive(seal(0n, 1), source(1000));
    assert.deepEqual(first.request, { target: TARGET, payload: Uint8Array.of(1) });
    const second = server.receive(seal(1n, 2), source(2000));
    assert.equal(second.session, first.session);
    assert.equal(server.sessions.size, 1);
    assert.equal(second.session.client.port, 2000);

    // A replay, even from the first address, is refused and moves nothing.
    assertProtocolError(() => server.receive(seal(1n, 2), source(1000)), "ERR_REPLAY");
    assert.equal(second.session.client.port, 2000);

    // Replies: the server's own session ID, counting from 0, naming the client's session.
    const session = second.session;
    assert.notEqual(session.serverSessionId, sessionId);
    for (const expected of [0n, 1n]) {
      const reply = openServerPacket(keys, session.wrap(Uint8Array.of(9), ECHO), {
        clientSessionId: sessionId,
      });
      assert.equal(reply.sessionId, session.serverSessionId);
      assert.equal(reply.packetId, expected);
      assert.deepEqual(reply.address, TARGET);
      assert.deepEqual(reply.payload, Uint8Array.of(9));
    }
  });
}

Deno.test("serverUdpCodec2022() gives each user its own session even for one session ID", () => {
  const info = methodOf("2022-blake3-aes-256-gcm");
  const identity = psk(info);
  const users = ["alice", "bob"].map((name) => ({ name, password: psk(info) }));
  const server = serverHarness(info, identity, users);
  assert.deepEqual(server.codec.users, ["alice", "bob"]);
  const sessionId = randomSessionId();
  const [alice, bob] = users.map((user) =>
    sealClientPacket(clientKeys2022(info, `${identity}:${user.password}`), {
      sessionId,
      packetId: 0n,
      address: TARGET,
      payload: new Uint8Array(0),
    })
  ) as [Uint8Array, Uint8Array];
  const a = server.receive(alice, source(1000)).session;
  const b = server.receive(bob, source(2000)).session;
  assert.notEqual(a, b);
  assert.deepEqual([a.user, b.user], ["alice", "bob"]);
  assert.equal(a.client.port, 1000);
  // A stranger's key names no user.
  const stranger = sealClientPacket(clientKeys2022(info, `${identity}:${psk(info)}`), {
    sessionId,
    packetId: 1n,
    address: TARGET,
    payload: new Uint8Array(0),
  });
  assertProtocolError(() => server.receive(stranger, source(3000)), "ERR_CIPHER");
});

for (const name of METHODS_2022) {
  Deno.test(`ClientSession2022 keeps a window per server session and at most two of them with ${name}`, () => {
    const info = methodOf(name);
    const key = psk(info);
    const keys = clientKeys2022(info, key);
    let now = 1_700_000_000_000;
    const client = udpClientSession2022(keys, { now: () => now });
    const reply = (serverSessionId: bigint, packetId: bigint, clientSessionId = client.id) =>
      sealServerPacket(info, keys.userPsk, {
        sessionId: serverSessionId,
        packetId,
        clientSessionId,
        address: TARGET,
        payload: Uint8Array.of(Number(packetId)),
      }, { now: () => now });
    const [s1, s2, s3] = [randomSessionId(), randomSessionId(), randomSessionId()];

    // The client's own packets: its session, IDs from 0, the server reads them.
    const opened = openClientPacket(
      serverKeys2022(info, key),
      client.seal(encodeUdpPlaintext(TARGET, Uint8Array.of(7))),
      { now: () => now },
    );
    assert.equal(opened.sessionId, client.id);
    assert.equal(opened.packetId, 0n);

    assert.deepEqual(client.open(reply(s1, 0n)), { address: TARGET, payload: Uint8Array.of(0) });
    assertProtocolError(() => client.open(reply(s1, 0n)), "ERR_REPLAY");
    assertProtocolError(() => client.open(reply(s1, 1n, client.id ^ 1n)), "ERR_REPLAY");
    // A restarted server: a second server session, with its own window.
    assert.deepEqual(client.open(reply(s2, 0n)).payload, Uint8Array.of(0));
    assert.deepEqual(client.open(reply(s1, 1n)).payload, Uint8Array.of(1));
    // A third one while the previous was heard from within the minute: refused.
    now += 59_000;
    assertProtocolError(() => client.open(reply(s3, 0n)), "ERR_REPLAY", "more than once");
    // Once the previous one has been quiet for a minute, the third replaces it.
    now += 1_000;
    assert.deepEqual(client.open(reply(s3, 5n)).payload, Uint8Array.of(5));
    assert.deepEqual(client.open(reply(s2, 1n)).payload, Uint8Array.of(1));
    assertProtocolError(() => client.open(reply(s1, 2n)), "ERR_REPLAY", "more than once");
  });
}

Deno.test("ClientSession2022 starts a new session before its packet IDs run out", () => {
  const info = methodOf("2022-blake3-aes-128-gcm");
  const key = psk(info);
  const client = udpClientSession2022(clientKeys2022(info, key), { packetIdLimit: 3n });
  const server = serverKeys2022(info, key);
  const seen = Array.from({ length: 5 }, () => {
    const packet = openClientPacket(
      server,
      client.seal(encodeUdpPlaintext(TARGET, Uint8Array.of(1))),
    );
    return [packet.sessionId, packet.packetId] as const;
  });
  const [first, , third, fourth, fifth] = seen as [
    readonly [bigint, bigint],
    readonly [bigint, bigint],
    readonly [bigint, bigint],
    readonly [bigint, bigint],
    readonly [bigint, bigint],
  ];
  assert.equal(third[0], first[0]);
  assert.equal(third[1], 2n);
  assert.notEqual(fourth[0], first[0]);
  assert.deepEqual(fourth, [client.id, 0n]);
  assert.deepEqual(fifth, [client.id, 1n]);
});

Deno.test("the UDP factories refuse bad 2022 keys, and users on a method without UDP users", () => {
  const info = methodOf("2022-blake3-aes-256-gcm");
  assert.throws(() => createServerUdpCodec(info, "not a key"), InvalidPskError);
  assert.throws(() => createUdpClientCipher(info, toBase64(new Uint8Array(16))), InvalidPskError);
  assert.throws(
    () => createServerUdpCodec(methodOf("2022-blake3-chacha20-poly1305"), psk(info), []),
    InvalidPskError,
  );
  // AEAD-2017 users are served by trial decryption (tests/e2e/multiuser_aead_test.ts).
  assert.deepEqual(
    createServerUdpCodec(methodOf("aes-256-gcm"), "password", [{ name: "a", password: "b" }])
      .users,
    ["a"],
  );
  const cipher = createUdpClientCipher(info, psk(info));
  assert.notEqual(cipher.newSession(), cipher.newSession());
});
