/**
 * Outline's connection prefix against servers that know nothing of it: the ssdeno local with a
 * `prefix` reaches libev and rust servers unchanged, and what it puts on the wire starts with
 * the prefix (read by a recording relay between the two), which the FET self-test then exempts.
 *
 * ```
 *   curl ─SOCKS5─▶ ssdeno local (prefix) ══▶ recorder ══▶ ss-server / ssserver ─▶ HTTP fixture
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { startLocal } from "../../local.ts";
import { fetCheck } from "../../protocol/fet.ts";
import { closeQuietly } from "../../relay/io.ts";
import { startHttpFixture } from "../_fixtures.ts";
import { localConfig } from "../e2e/_harness.ts";
import { assertAllOk, checkTransfers, localTarget, SESSIONS_PER_CHECK } from "./_checks.ts";
import { type PeerProcess, peerTest, startSsServer } from "./_peers.ts";
import { startRustServer } from "./_rust.ts";
import { passwordFor } from "./_scenarios.ts";

/** The TLS ClientHello prefix of Outline's docs, as a config string (one char per byte). */
const TLS_PREFIX = "\u0016\u0003\u0001\u0000\u00a8\u0001\u0001";

/** A TCP relay in front of `port` that keeps each connection's first segment. */
function startRecorder(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const firsts: Uint8Array[] = [];
  const sessions = new Set<Promise<void>>();
  const pump = async (from: Deno.Conn, to: Deno.Conn, record: boolean) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let first = record;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (first) firsts.push(buffer.slice(0, n));
        first = false;
        let at = 0;
        while (at < n) at += await to.write(buffer.subarray(at, n));
      }
      await to.closeWrite();
    } catch {
      closeQuietly(to);
      closeQuietly(from);
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const session = (async () => {
        const server = await Deno.connect({ hostname: "127.0.0.1", port });
        await Promise.all([pump(client, server, true), pump(server, client, false)]);
        closeQuietly(client);
        closeQuietly(server);
      })().catch(() => closeQuietly(client));
      sessions.add(session);
      session.finally(() => sessions.delete(session));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    firsts,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.allSettled([...sessions]);
    },
  };
}

async function prefixedTransfers(
  method: string,
  password: string,
  prefix: string,
  peer: PeerProcess,
) {
  await using http = startHttpFixture();
  await using recorder = startRecorder(peer.port);
  const local = await startLocal(
    localConfig(method, recorder.port, {
      password,
      servers: [{
        server: "127.0.0.1",
        serverPort: recorder.port,
        method,
        password,
        prefix: Uint8Array.from(prefix, (c) => c.charCodeAt(0)),
      }],
    }),
    { graceMs: 0 },
  );
  try {
    await checkTransfers(local.addr.port, localTarget(http), peer.output);
    await assertAllOk(local, SESSIONS_PER_CHECK, "ssdeno local");
  } finally {
    await local.close();
  }
  assert.ok(recorder.firsts.length >= SESSIONS_PER_CHECK);
  for (const first of recorder.firsts) {
    assert.equal(String.fromCharCode(...first.subarray(0, prefix.length)), prefix);
    assert.ok(fetCheck(first).exempt, `not exempt: ${first.subarray(0, 16)}`);
  }
}

peerTest({
  name:
    "a prefixed ssdeno local reaches libev ss-server unchanged; its salts start with the prefix",
  peers: ["ss-server", "curl"],
  async fn(t) {
    for (const method of ["aes-256-gcm", "chacha20-ietf-poly1305"]) {
      await t.step(method, async () => {
        const password = passwordFor(method);
        await using peer = await startSsServer({ method, password });
        await prefixedTransfers(method, password, TLS_PREFIX, peer);
      });
    }
  },
});

peerTest({
  name: "a prefixed ssdeno local reaches rust ssserver unchanged, AEAD-2017 and 2022",
  peers: ["ssserver", "curl"],
  async fn(t) {
    const cases = [
      ["aes-128-gcm", "GET "],
      ["2022-blake3-aes-256-gcm", TLS_PREFIX],
      ["2022-blake3-aes-128-gcm", "PUT "],
    ] as const;
    for (const [method, prefix] of cases) {
      await t.step(`${method} with a ${prefix.length}-byte prefix`, async () => {
        const password = passwordFor(method); // random for 2022: one call per server
        await using peer = await startRustServer({ method, password });
        await prefixedTransfers(method, password, prefix, peer);
      });
    }
  },
});
