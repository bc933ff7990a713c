/**
 * protocol/spare_writer_key.ts: a writer's salt and key made ahead of need are taken once, only
 * by a writer of the same key, method and prefix, and sessions built on them still interoperate
 * (AEAD-2017 and 2022) and record their salts as our own (AEAD-2017).
 */
import assert from "node:assert/strict";
import { deriveMasterKey } from "../../crypto/kdf.ts";
import { generatePsk } from "../../crypto/kdf2022.ts";
import { findMethod } from "../../crypto/methods.ts";
import type { Address } from "../../protocol/address.ts";
import { aeadClientFraming, aeadServerFraming } from "../../protocol/aead_framing.ts";
import { clientFraming2022, serverFraming2022 } from "../../protocol/aead2022_framing.ts";
import { clientKeys2022, serverKeys2022 } from "../../protocol/aead2022_identity.ts";
import { ReplayFilter } from "../../protocol/replay_filter.ts";
import { SaltPool } from "../../protocol/salt_pool.ts";
import {
  hasSpareWriterKey,
  prepareWriterKey,
  takeWriterKey,
} from "../../protocol/spare_writer_key.ts";
import type { StreamFraming } from "../../protocol/stream_framing.ts";
import { METHODS_2022 } from "../crypto/_vectors2022.ts";
import { codeOf, openAll, payloadOf } from "./_framing.ts";

const METHOD = findMethod("aes-128-gcm")!;
const TARGET: Address = { type: "domain", host: "example.com", port: 443 };

const hexOf = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16)).join(".");

/** The request and the payload `framing` opens from all of `input`. */
function openWhole(framing: StreamFraming, input: Uint8Array) {
  const { steps } = openAll(framing, input);
  return { request: steps.find((step) => step.request)?.request, payload: payloadOf(steps) };
}

Deno.test("spare writer key: made when asked, taken by the next writer of the key, once", () => {
  const key = deriveMasterKey(METHOD, "spare-once");
  const first = takeWriterKey(METHOD, key, undefined);
  assert.ok(!hasSpareWriterKey(key), "nothing made until asked");
  const salts = new Set([hexOf(first.salt)]);
  for (let i = 0; i < 200; i++) {
    prepareWriterKey(METHOD, key, undefined);
    prepareWriterKey(METHOD, key, undefined);
    assert.ok(hasSpareWriterKey(key));
    const next = takeWriterKey(METHOD, key, undefined);
    assert.ok(!hasSpareWriterKey(key), "taking the spare removes it (and asking twice made one)");
    salts.add(hexOf(next.salt));
  }
  assert.equal(salts.size, 201, "no salt served twice");
});

Deno.test("spare writer key: not used for another prefix or method, nor for another key", () => {
  const key = deriveMasterKey(METHOD, "spare-match");
  prepareWriterKey(METHOD, key, undefined);
  const prefix = Uint8Array.of(0x16, 0x03, 0x01);
  const prefixed = takeWriterKey(METHOD, key, prefix);
  assert.ok(hasSpareWriterKey(key), "the spare without a prefix was left alone");
  assert.deepEqual(prefixed.salt.subarray(0, 3), prefix, "a fresh salt with the prefix");
  // Asked for with the prefix, the spare follows it.
  prepareWriterKey(METHOD, key, prefix);
  assert.deepEqual(takeWriterKey(METHOD, key, prefix).salt.subarray(0, 3), prefix);
  assert.ok(!hasSpareWriterKey(key), "taken");
  prepareWriterKey(METHOD, key, prefix);
  takeWriterKey({ ...METHOD }, key, prefix);
  assert.ok(hasSpareWriterKey(key), "another method's writer leaves it alone");
  assert.ok(!hasSpareWriterKey(deriveMasterKey(METHOD, "spare-match")), "keyed by the array");
});

Deno.test("spare writer key: sessions on spares interoperate and their salts are remembered", () => {
  const key = deriveMasterKey(METHOD, "spare-sessions");
  const replayFilter = new ReplayFilter(1000);
  for (let i = 0; i < 5; i++) {
    const client = aeadClientFraming(METHOD, key, TARGET);
    const flight = client.seal(Uint8Array.of(1, 2, i));
    client.prepareNext?.();
    const server = aeadServerFraming(METHOD, key, { replayFilter });
    const opened = openWhole(server, flight);
    assert.deepEqual(opened.request?.address, TARGET);
    assert.deepEqual(opened.payload, Uint8Array.of(1, 2, i));
    const answer = server.seal(Uint8Array.of(9, i));
    server.prepareNext?.();
    assert.ok(hasSpareWriterKey(key), "the next session's key is ready");
    assert.deepEqual(openWhole(client, answer).payload, Uint8Array.of(9, i));
    // The server's answer reflected back at it: its salt is its own.
    const reflected = () => openWhole(aeadServerFraming(METHOD, key, { replayFilter }), answer);
    assert.equal(codeOf(reflected), "ERR_REPLAY");
  }
});

Deno.test("spare writer key, 2022: requests and responses on spares interoperate, salts unique", async (t) => {
  for (const name of METHODS_2022) {
    const info = findMethod(name)!;
    const psk = generatePsk(info);
    const users = name.includes("aes") ? [{ name: "alice", password: generatePsk(info) }] : [];
    for (const withUsers of users.length > 0 ? [false, true] : [false]) {
      await t.step(`${name}${withUsers ? " with users" : ""}`, () => {
        const client = clientKeys2022(info, withUsers ? `${psk}:${users[0]!.password}` : psk);
        const server = serverKeys2022(info, psk, withUsers ? users : undefined);
        // The response's spare is keyed by the session's PSK: the user's, with users.
        const sessionPsk = withUsers ? [...server.users!.values()][0]!.psk : server.psk;
        const saltPool = new SaltPool();
        const prefix = Uint8Array.of(0x16, 0x03, 0x01);
        const salts = new Set<string>();
        for (let i = 0; i < 6; i++) {
          // Three sessions with the prefix, three without: a spare is taken when its prefix
          // matches (the second and third of each run) and left alone when it does not.
          const saltPrefix = i < 3 ? prefix : undefined;
          const clientFraming = clientFraming2022(client, TARGET, saltPrefix ? { saltPrefix } : {});
          const flight = clientFraming.seal(Uint8Array.of(1, 2, i));
          assert.equal(
            hasSpareWriterKey(client.userPsk),
            i === 3,
            "the client's spare is taken by a request with its prefix, kept by one without",
          );
          if (saltPrefix) assert.deepEqual(flight.subarray(0, 3), prefix, "the prefix leads");
          salts.add(hexOf(flight.subarray(0, info.saltSize)));
          clientFraming.prepareNext?.();
          assert.ok(hasSpareWriterKey(client.userPsk), "the next request's key is ready");
          const serverFraming = serverFraming2022(server, { saltPool });
          const opened = openWhole(serverFraming, flight);
          assert.deepEqual(opened.request?.address, TARGET);
          assert.deepEqual(opened.payload, Uint8Array.of(1, 2, i));
          const answer = serverFraming.seal(Uint8Array.of(9, i));
          assert.equal(hasSpareWriterKey(sessionPsk), false, "the server's spare is taken");
          salts.add(hexOf(answer.subarray(0, info.saltSize)));
          serverFraming.prepareNext?.();
          assert.ok(hasSpareWriterKey(sessionPsk), "the next response's key is ready");
          assert.deepEqual(openWhole(clientFraming, answer).payload, Uint8Array.of(9, i));
          assert.deepEqual(
            openWhole(clientFraming, serverFraming.seal(Uint8Array.of(7))).payload,
            Uint8Array.of(7),
          );
        }
        assert.equal(salts.size, 12, "no salt served twice, requests and responses alike");
      });
    }
  }
});
