/**
 * 2022 UDP abuse: random, truncated and tampered datagrams, authenticated packets with broken
 * bodies, and a flood of new sessions against a server with a small NAT table. The server must
 * answer none of the junk, count every piece under its status, never hold more sessions than
 * its bound, and keep relaying a valid client's traffic throughout.
 *
 * Pacing as in udp_abuse_test.ts: the server reads its socket in order, so once the valid
 * client's round trip after a batch completes, the whole batch has been counted.
 */
import assert from "node:assert/strict";
import { aesBlockCipherFor } from "../../crypto/aes_block.ts";
import { findMethod } from "../../crypto/methods.ts";
import { createXChaCha20Poly1305 } from "../../crypto/xchacha20_poly1305.ts";
import { encodeAddress } from "../../protocol/address.ts";
import { type ClientKeys2022, sealUdpIdentityHeaders } from "../../protocol/aead2022_identity.ts";
import {
  createUdpSessionAead,
  encodeSeparateHeader,
  randomSessionId,
  XCHACHA_NONCE_SIZE,
} from "../../protocol/aead2022_udp.ts";
import type { RunningService } from "../../relay/service.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { startServer } from "../../server.ts";
import { randomBytes } from "../_fixtures.ts";
import { serverConfig } from "../e2e/_harness.ts";
import {
  datagramBytes,
  loopback,
  randomPsk,
  Shadowsocks2022UdpClient,
  UdpEcho,
} from "../e2e/_udp_harness.ts";

const CAPACITY = 32;
const BATCH = 50;
const RANDOM_DATAGRAMS = 600;
const FLOOD_SESSIONS = 400;

interface Setup {
  name: string;
  method: string;
  /** The server's key (the iPSK with users). */
  serverKey: string;
  /** A client password the server accepts. */
  clientKey: string;
  users?: { name: string; password: string }[];
}

function setups(): Setup[] {
  const out: Setup[] = [];
  for (
    const method of [
      "2022-blake3-aes-128-gcm",
      "2022-blake3-aes-256-gcm",
      "2022-blake3-chacha20-poly1305",
    ]
  ) {
    const key = randomPsk(findMethod(method)!.keySize);
    out.push({ name: method, method, serverKey: key, clientKey: key });
  }
  const method = "2022-blake3-aes-128-gcm";
  const identity = randomPsk(16);
  const users = ["alice", "bob", "carol"].map((name) => ({ name, password: randomPsk(16) }));
  out.push({
    name: `${method} with 3 users`,
    method,
    serverKey: identity,
    clientKey: `${identity}:${users[1]!.password}`,
    users,
  });
  return out;
}

/** Seals an arbitrary client body (`body` after the separate header) with real keys. */
function sealRawBody(keys: ClientKeys2022, body: Uint8Array): Uint8Array {
  const header = encodeSeparateHeader({ sessionId: randomSessionId(), packetId: 0n });
  if (keys.method.algorithm === "chacha20-poly1305") {
    const nonce = crypto.getRandomValues(new Uint8Array(XCHACHA_NONCE_SIZE));
    return concat(
      nonce,
      createXChaCha20Poly1305(keys.userPsk).seal(nonce, concat(header, body)),
    );
  }
  const sessionId = new DataView(header.buffer).getBigUint64(0);
  const aead = createUdpSessionAead(keys.method, keys.userPsk, sessionId);
  return concat(
    aesBlockCipherFor(keys.identityPsks[0] ?? keys.userPsk).encrypt(header),
    sealUdpIdentityHeaders(keys, header),
    aead.seal(header.subarray(4), body),
  );
}

/** A client body: type, the current timestamp, padding length, then `rest`. */
function body(type: number, paddingLength: number, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(11 + rest.length);
  const view = new DataView(out.buffer);
  out[0] = type;
  view.setBigUint64(1, BigInt(Math.floor(Date.now() / 1000)));
  view.setUint16(9, paddingLength);
  out.set(rest, 11);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Checks the session count against the bound and the opened/closed bookkeeping. */
function assertBounded(server: RunningService): void {
  const stats = server.udpStats!;
  assert.ok(stats.associations <= CAPACITY, `${stats.associations} sessions`);
  assert.equal(
    stats.associations,
    stats.associationsOpened - stats.associationsEvicted - stats.associationsExpired,
  );
}

for (const setup of setups()) {
  Deno.test(`the 2022 UDP server drops junk silently and stays bounded with ${setup.name}`, async () => {
    const echo = new UdpEcho();
    const server = await startServer(
      serverConfig(setup.method, {
        mode: "udp_only",
        password: setup.serverKey,
        udpMaxAssociations: CAPACITY,
        ...(setup.users ? { users: setup.users } : {}),
      }),
      { graceMs: 0 },
    );
    const valid = new Shadowsocks2022UdpClient(setup.method, setup.clientKey, server.addr.port);
    const attacker = new Shadowsocks2022UdpClient(setup.method, setup.clientKey, server.addr.port);
    const stats = server.udpStats!;
    let roundTrips = 0;
    /** One valid round trip; it also proves every earlier datagram was read. */
    const roundTrip = async () => {
      const payload = datagramBytes(200, roundTrips);
      await valid.send(loopback(echo.port), payload);
      const reply = await valid.next();
      assert.deepEqual(reply.address, loopback(echo.port));
      assert.deepEqual(reply.payload, payload);
      roundTrips++;
      assertBounded(server);
    };
    try {
      await roundTrip();

      // Random datagrams of 0 to 599 bytes, zero-length included.
      for (let i = 0; i < RANDOM_DATAGRAMS; i++) {
        await attacker.sendRaw(randomBytes(i % 600));
        if (i % BATCH === BATCH - 1) await roundTrip();
      }
      await roundTrip();
      assert.equal(stats.statuses.ERR_CIPHER, RANDOM_DATAGRAMS);

      // Every strict prefix and every single-bit flip of a valid packet (EIH included).
      const packet = attacker.seal(loopback(echo.port), datagramBytes(10, 1));
      for (let length = 0; length < packet.length; length++) {
        await attacker.sendRaw(packet.slice(0, length));
        if (length % BATCH === BATCH - 1) await roundTrip();
      }
      for (let i = 0; i < packet.length; i++) {
        const tampered = packet.slice();
        tampered[i]! ^= 1 << (i % 8);
        await attacker.sendRaw(tampered);
        if (i % BATCH === BATCH - 1) await roundTrip();
      }
      await roundTrip();
      assert.equal(stats.statuses.ERR_CIPHER, RANDOM_DATAGRAMS + 2 * packet.length);

      // Authenticated, but the body is wrong: a server's type or too short to hold the fixed
      // fields (ERR_CIPHER, like a bad tag), or bad padding or address (ERR_READ_ADDRESS).
      const target = encodeAddress(loopback(echo.port));
      const foreignBodies = [body(1, 0, target), body(0, 0, new Uint8Array(0)).subarray(0, 9)];
      const badBodies = [
        body(0, 901, concat(new Uint8Array(901), target)),
        body(0, 10, Uint8Array.of(1, 2, 3)),
        body(0, 0, Uint8Array.of(0x09, 1, 2, 3, 4, 0, 53)),
        body(0, 0, Uint8Array.of(0x01, 127, 0, 0)),
        body(0, 0, Uint8Array.of(0x03, 0, 0, 53)),
      ];
      for (const bad of [...foreignBodies, ...badBodies]) {
        await attacker.sendRaw(sealRawBody(attacker.keys, bad));
      }
      await roundTrip();
      const cipherErrors = RANDOM_DATAGRAMS + 2 * packet.length + foreignBodies.length;
      assert.equal(stats.statuses.ERR_CIPHER, cipherErrors);
      assert.equal(stats.statuses.ERR_READ_ADDRESS, badBodies.length);

      // None of it was answered, and none of it opened a session.
      assert.ok(await attacker.peer.silentFor(200));
      assert.equal(attacker.peer.pending, 0);
      assert.equal(stats.associationsOpened, 1);
      assert.equal(echo.echoed, roundTrips);

      // A flood of new sessions, each with one valid packet: the table stays at its bound.
      let maxSeen = 0;
      using flood = UdpSocket.bind("127.0.0.1", 0);
      for (let i = 0; i < FLOOD_SESSIONS; i++) {
        attacker.sessionId = randomSessionId();
        await flood.send(attacker.seal(loopback(echo.port), Uint8Array.of(i & 0xff)), {
          hostname: "127.0.0.1",
          port: server.addr.port,
        });
        if (i % BATCH === BATCH - 1) {
          await roundTrip();
          maxSeen = Math.max(maxSeen, stats.associations);
        }
      }
      await roundTrip();
      assert.equal(maxSeen, CAPACITY);
      assert.ok(stats.associationsOpened > FLOOD_SESSIONS);
      assert.ok(stats.associationsEvicted >= FLOOD_SESSIONS + 1 - CAPACITY);
      assertBounded(server);
      assert.equal(stats.statuses.ERR_CIPHER, cipherErrors);
      assert.equal(stats.statuses.ERR_READ_ADDRESS, badBodies.length);
      assert.equal(stats.statuses.ERR_REPLAY, 0);
    } finally {
      await attacker.close();
      await valid.close();
      await server.close();
      await echo.close();
    }
    assert.equal(stats.associations, 0);
  });
}
