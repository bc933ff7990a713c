import assert from "node:assert/strict";
import { RCODE_SERVFAIL, TYPE_A, TYPE_AAAA } from "../../protocol/dns.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import {
  type NameServer,
  ResolveError,
  Resolver,
  type ResolveReason,
} from "../../relay/resolver.ts";
import {
  buildMessage,
  concat,
  dnsmasqTest,
  FakeDnsServer,
  type FakeQuery,
  type FakeReply,
  type MessageSpec,
  startDnsmasq,
  u16,
  u32,
  waitFor,
} from "./_dnsmasq.ts";

/** 40 A records for one name: the UDP answer passes 512 bytes, so dnsmasq sets TC. */
const BIG = Array.from({ length: 40 }, (_, i) => `--host-record=big.test,10.1.0.${i + 1},60`);

/** The zone of the main dnsmasq: local names under .test, nothing forwarded. */
const ZONE = [
  // Names under .test not listed get NXDOMAIN, listed names without the type get NODATA
  // (both without SOA); names elsewhere get REFUSED (no upstream).
  "--local=/test/",
  "--host-record=a.test,10.0.0.1,fd00::1,300",
  "--host-record=v4.test,10.0.0.2,300",
  "--host-record=short.test,10.0.0.3,fd00::3,1",
  "--host-record=zero.test,10.0.0.4,fd00::4,0",
  "--host-record=herd.test,10.0.0.5,fd00::5,300",
  "--cname=alias.test,c2.test,50",
  "--cname=c2.test,v4.test,40",
  "--txt-record=txt.test,only text here",
  // NXDOMAIN for the domain and every name under it.
  "--address=/blocked.test/",
  ...BIG,
];

/**
 * An authoritative dnsmasq: its negative answers carry the zone's SOA, whose TTL and MINIMUM
 * are both `--auth-ttl`.
 */
const AUTH_ZONE = [
  "--auth-server=ns.zone,127.0.0.1",
  "--auth-zone=zone",
  "--auth-soa=1,hostmaster.zone",
  "--auth-ttl=600",
  "--host-record=v4.zone,10.0.0.9",
];

const V4 = { ipv6First: false };
const V6 = { ipv6First: true };

/** A clock the test moves by hand. */
function manualClock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

async function resolveFails(
  resolver: Resolver,
  name: string,
  reason: ResolveReason,
): Promise<ResolveError> {
  const error = await rejection(resolver.resolve(name, V4));
  assert.ok(error instanceof ResolveError, String(error));
  assert.equal(error.reason, reason, error.message);
  return error;
}

/** A fake's answer to `query`, echoing its ID and question. */
function reply(query: FakeQuery, spec: Partial<MessageSpec> = {}): Uint8Array {
  return buildMessage({
    id: query.id,
    question: { name: query.name, type: query.type },
    ...spec,
  });
}

/** The address a well-behaved fake gives every name: 192.0.2.1 and 2001:db8::1, TTL 300. */
function good(query: FakeQuery, ttl = 300): Uint8Array {
  return reply(query, {
    answers: [{
      name: query.name,
      type: query.type,
      ttl,
      data: query.type === TYPE_A ? "192.0.2.1" : "2001:db8::1",
    }],
  });
}

const GOOD = ["192.0.2.1", "2001:db8::1"];

function via(...servers: { port: number }[]): NameServer[] {
  return servers.map((server) => ({ host: "127.0.0.1", port: server.port }));
}

dnsmasqTest("Resolver against dnsmasq", async (t, binary) => {
  await using dns = await startDnsmasq(binary, ZONE);
  const servers = via(dns);

  await t.step("resolves A and AAAA in one lookup, IPv4 first unless ipv6First", async () => {
    const resolver = new Resolver({ servers });
    assert.deepEqual(await resolver.resolve("a.test", V4), ["10.0.0.1", "fd00::1"]);
    assert.equal(resolver.stats.queries, 2);
    assert.deepEqual(await resolver.resolve("a.test", V6), ["fd00::1", "10.0.0.1"]);
    assert.equal(resolver.stats.queries, 2);
    assert.deepEqual(await new Resolver({ servers }).resolve("v4.test", V6), ["10.0.0.2"]);
  });

  await t.step("answers from the cache, case-insensitively", async () => {
    const resolver = new Resolver({ servers });
    await resolver.resolve("A.Test", V4);
    assert.deepEqual(await resolver.resolve("a.TEST.", V4), ["10.0.0.1", "fd00::1"]);
    const stats = resolver.stats;
    assert.deepEqual(
      [stats.queries, stats.cacheMisses, stats.cacheHits, stats.cacheSize],
      [2, 2, 2, 2],
    );
  });

  await t.step("asks again once a 1 s TTL has passed, not before", async () => {
    const resolver = new Resolver({ servers });
    const start = Date.now();
    assert.deepEqual(await resolver.resolve("short.test", V4), ["10.0.0.3", "fd00::3"]);
    await resolver.resolve("short.test", V4);
    assert.equal(resolver.stats.queries, 2);
    // The entry was stored after `start`, so it cannot expire before start + 1000.
    await waitFor(
      async () => {
        await resolver.resolve("short.test", V4);
        return resolver.stats.queries > 2;
      },
      "the 1 s TTL to expire",
      3000,
    );
    assert.ok(Date.now() - start >= 1000, `asked again after ${Date.now() - start} ms`);
    assert.equal(resolver.stats.queries, 4);
  });

  await t.step("keeps an answer its TTL, clamped to maxTtlS", async () => {
    const clock = manualClock();
    const resolver = new Resolver({ servers, now: clock.now });
    await resolver.resolve("a.test", V4); // TTL 300
    clock.advance(299_999);
    await resolver.resolve("a.test", V4);
    assert.equal(resolver.stats.queries, 2);
    clock.advance(1);
    await resolver.resolve("a.test", V4);
    assert.equal(resolver.stats.queries, 4);

    const capped = new Resolver({ servers, now: clock.now, maxTtlS: 10 });
    await capped.resolve("a.test", V4);
    clock.advance(9_999);
    await capped.resolve("a.test", V4);
    assert.equal(capped.stats.queries, 2);
    clock.advance(1);
    await capped.resolve("a.test", V4);
    assert.equal(capped.stats.queries, 4);
  });

  await t.step("keeps a TTL 0 answer only when minTtlS says so", async () => {
    const clock = manualClock();
    const plain = new Resolver({ servers, now: clock.now });
    await plain.resolve("zero.test", V4);
    await plain.resolve("zero.test", V4);
    assert.equal(plain.stats.queries, 4);
    const floored = new Resolver({ servers, now: clock.now, minTtlS: 5 });
    await floored.resolve("zero.test", V4);
    clock.advance(4_999);
    assert.deepEqual(await floored.resolve("zero.test", V4), ["10.0.0.4", "fd00::4"]);
    assert.equal(floored.stats.queries, 2);
    clock.advance(1);
    await floored.resolve("zero.test", V4);
    assert.equal(floored.stats.queries, 4);
  });

  await t.step("follows a CNAME chain and keeps it for the chain's smallest TTL", async () => {
    const clock = manualClock();
    const resolver = new Resolver({ servers, now: clock.now });
    // alias.test → c2.test (TTL 50) → v4.test (TTL 40) → 10.0.0.2 (TTL 300); no AAAA.
    assert.deepEqual(await resolver.resolve("alias.test", V6), ["10.0.0.2"]);
    clock.advance(39_999);
    await resolver.resolve("alias.test", V4);
    const before = resolver.stats.queries;
    clock.advance(1);
    await resolver.resolve("alias.test", V4);
    assert.ok(resolver.stats.queries > before);
  });

  await t.step("asks again over TCP when dnsmasq truncates the UDP answer", async () => {
    const resolver = new Resolver({ servers });
    const addresses = await resolver.resolve("big.test", V4);
    // Over UDP dnsmasq fits 30 of the 40 records; all 40 come back only over TCP.
    assert.equal(addresses.length, 40);
    assert.deepEqual(
      new Set(addresses),
      new Set(Array.from({ length: 40 }, (_, i) => `10.1.0.${i + 1}`)),
    );
    // A: UDP then TCP; AAAA: UDP (NODATA).
    assert.deepEqual([resolver.stats.tcpFallbacks, resolver.stats.queries], [1, 3]);
  });

  await t.step("reports NXDOMAIN, and does not keep it without an SOA (RFC 2308 §5)", async () => {
    const resolver = new Resolver({ servers });
    await resolveFails(resolver, "nope.test", "nxdomain");
    await resolveFails(resolver, "x.blocked.test", "nxdomain");
    await resolveFails(resolver, "nope.test", "nxdomain");
    const stats = resolver.stats;
    assert.deepEqual([stats.queries, stats.negativeHits, stats.cacheSize], [6, 0, 0]);
    assert.equal(stats.errors.nxdomain, 3);
  });

  await t.step("reports NODATA for a name with records of other types only", async () => {
    const resolver = new Resolver({ servers });
    await resolveFails(resolver, "txt.test", "nodata");
    assert.equal(resolver.stats.errors.nodata, 1);
  });

  await t.step("reports REFUSED after trying every attempt", async () => {
    const resolver = new Resolver({ servers, attempts: 3 });
    await resolveFails(resolver, "elsewhere.example", "refused");
    assert.equal(resolver.stats.queries, 6);
  });

  await t.step("concurrent lookups of one name share one query per type", async () => {
    const resolver = new Resolver({ servers });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => resolver.resolve("herd.test", V4)),
    );
    for (const result of results) assert.deepEqual(result, ["10.0.0.5", "fd00::5"]);
    assert.deepEqual([resolver.stats.queries, resolver.stats.cacheMisses], [2, 100]);
  });

  await t.step("a silent server times out, then the next one answers", async () => {
    await using silent = FakeDnsServer.start(() => []);
    const resolver = new Resolver({ servers: [...via(silent), ...servers], timeoutMs: 200 });
    const start = Date.now();
    assert.deepEqual(await resolver.resolve("a.test", V4), ["10.0.0.1", "fd00::1"]);
    assert.ok(Date.now() - start >= 200);
    assert.equal(silent.queries.length, 2);
    assert.deepEqual([resolver.stats.timeouts, resolver.stats.queries], [2, 4]);
  });

  await t.step("a SERVFAIL moves on to the next server", async () => {
    await using failing = FakeDnsServer.start((query) => [reply(query, { rcode: RCODE_SERVFAIL })]);
    const resolver = new Resolver({ servers: [...via(failing), ...servers] });
    assert.deepEqual(await resolver.resolve("a.test", V4), ["10.0.0.1", "fd00::1"]);
    assert.equal(failing.queries.length, 2);
    assert.equal(resolver.stats.queries, 4);
  });

  await t.step("a ResolveError is an ERR_RESOLVE ProtocolError naming only the host", async () => {
    const error = await resolveFails(new Resolver({ servers }), "nope.test", "nxdomain");
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, "ERR_RESOLVE");
    assert.ok(error.message.includes('"nope.test"'), error.message);
    assert.ok(!error.message.includes(String(dns.port)), error.message);
    assert.ok(!error.message.includes("127.0.0.1"), error.message);
  });
});

dnsmasqTest(
  "Resolver keeps negative answers by the SOA of an authoritative dnsmasq",
  async (t, binary) => {
    await using dns = await startDnsmasq(binary, AUTH_ZONE);
    const servers = via(dns);

    await t.step("NXDOMAIN is kept for min(SOA minimum, negativeTtlS)", async () => {
      const clock = manualClock();
      const resolver = new Resolver({ servers, now: clock.now }); // SOA 600, cap 60
      await resolveFails(resolver, "nope.zone", "nxdomain");
      clock.advance(59_999);
      await resolveFails(resolver, "nope.zone", "nxdomain");
      assert.deepEqual([resolver.stats.queries, resolver.stats.negativeHits], [2, 2]);
      clock.advance(1);
      await resolveFails(resolver, "nope.zone", "nxdomain");
      assert.equal(resolver.stats.queries, 4);
      assert.equal(resolver.stats.errors.nxdomain, 3);
    });

    await t.step("below the cap, the SOA minimum decides", async () => {
      const clock = manualClock();
      const resolver = new Resolver({ servers, now: clock.now, negativeTtlS: 3600 });
      await resolveFails(resolver, "nope.zone", "nxdomain");
      clock.advance(599_999);
      await resolveFails(resolver, "nope.zone", "nxdomain");
      assert.equal(resolver.stats.queries, 2);
      clock.advance(1);
      await resolveFails(resolver, "nope.zone", "nxdomain");
      assert.equal(resolver.stats.queries, 4);
    });

    await t.step("NODATA for AAAA is kept beside the A answer", async () => {
      const resolver = new Resolver({ servers });
      assert.deepEqual(await resolver.resolve("v4.zone", V6), ["10.0.0.9"]);
      assert.deepEqual(await resolver.resolve("V4.zone", V6), ["10.0.0.9"]);
      const stats = resolver.stats;
      assert.deepEqual(
        [stats.queries, stats.cacheHits, stats.negativeHits, stats.cacheSize],
        [2, 1, 1, 2],
      );
    });
  },
);

Deno.test("Resolver answers IP literals and localhost without a query", async () => {
  const resolver = new Resolver({ servers: [{ host: "127.0.0.1", port: 9 }] });
  assert.deepEqual(await resolver.resolve("192.0.2.1", V6), ["192.0.2.1"]);
  assert.deepEqual(await resolver.resolve("[2001:DB8:0::1]", V4), ["2001:db8::1"]);
  assert.deepEqual(await resolver.resolve("LocalHost.", V4), ["127.0.0.1", "::1"]);
  assert.deepEqual(await resolver.resolve("api.localhost", V6), ["::1", "127.0.0.1"]);
  assert.equal(resolver.stats.queries, 0);
});

Deno.test("Resolver rejects invalid names before sending anything", async (t) => {
  await using server = FakeDnsServer.start((query) => [good(query)]);
  const resolver = new Resolver({ servers: via(server) });
  const label63 = "a".repeat(63);
  const names: [string, string][] = [
    ["longer than 253 characters", `${[label63, label63, label63, label63].join(".")}`],
    ["with a 64-character label", `${"b".repeat(64)}.test`],
    ["with an empty label", "a..test"],
    ["with non-ASCII", "bücher.test"],
  ];
  for (const [what, name] of names) {
    await t.step(what, async () => {
      await resolveFails(resolver, name, "invalid");
    });
  }
  assert.equal(server.queries.length, 0);
  assert.equal(resolver.stats.queries, 0);
  assert.equal(resolver.stats.errors.invalid, names.length);
});

Deno.test("Resolver drops spoofed and mismatched datagrams and keeps waiting", async (t) => {
  const cases: [string, (query: FakeQuery) => FakeReply[]][] = [
    ["another ID", (q) => [good({ ...q, id: q.id ^ 0x8000 }), good(q)]],
    ["another port", (q) => [{ bytes: bogus(q), fromOtherPort: true }, good(q)]],
    ["another question name", (q) => [good({ ...q, name: `evil.${q.name}` }), good(q)]],
    ["another question type", (q) => [
      good({ ...q, type: q.type === TYPE_A ? TYPE_AAAA : TYPE_A }),
      good(q),
    ]],
    ["a query instead of an answer", (q) => [reply(q, { response: false }), good(q)]],
    ["unreadable bytes", (q) => [crypto.getRandomValues(new Uint8Array(7)), good(q)]],
    ["a compression loop in the question", (q) => [loopInQuestion(q), good(q)]],
  ];
  for (const [what, handler] of cases) {
    await t.step(what, async () => {
      await using server = FakeDnsServer.start(handler);
      const resolver = new Resolver({ servers: via(server), attempts: 1 });
      assert.deepEqual(await resolver.resolve("spoof.test", V4), GOOD);
      assert.equal(resolver.stats.dropped, 2);
    });
  }
});

/** A believable answer with a wrong address, for a spoofer. */
function bogus(query: FakeQuery): Uint8Array {
  return reply(query, {
    answers: [{
      name: query.name,
      type: query.type,
      data: query.type === TYPE_A ? "203.0.113.66" : "2001:db8::66",
    }],
  });
}

/** The right ID, and a question name that is a pointer to itself. */
function loopInQuestion(query: FakeQuery): Uint8Array {
  const header = reply(query).subarray(0, 12);
  return concat([header, Uint8Array.of(0xc0, 12), u16(query.type), u16(1)]);
}

Deno.test("Resolver times out when only spoofs arrive, without hanging", async () => {
  await using server = FakeDnsServer.start((q) => [good({ ...q, id: q.id ^ 1 })]);
  const resolver = new Resolver({ servers: via(server), attempts: 2, timeoutMs: 150 });
  const start = Date.now();
  await resolveFails(resolver, "spoof.test", "timeout");
  assert.ok(Date.now() - start < 2000);
  assert.deepEqual([resolver.stats.timeouts, resolver.stats.dropped], [4, 4]);
  assert.equal(resolver.stats.errors.timeout, 1);
});

Deno.test("Resolver gives up an attempt after 64 junk datagrams, before its timeout", async () => {
  const junk = (q: FakeQuery) => Array.from({ length: 70 }, () => good({ ...q, id: q.id ^ 1 }));
  await using server = FakeDnsServer.start((q) => [...junk(q), good(q)]);
  const resolver = new Resolver({ servers: via(server), attempts: 1, timeoutMs: 30_000 });
  await resolveFails(resolver, "flood.test", "timeout");
  assert.equal(resolver.stats.dropped, 128);
});

Deno.test("Resolver reports malformed answers to its question, and tries again", async (t) => {
  const cases: [string, (query: FakeQuery) => Uint8Array][] = [
    ["a compression pointer to itself", (q) => withRecordName(q, (at) => u16(0xc000 | at))],
    ["a compression pointer forward", (q) => withRecordName(q, (at) => u16(0xc000 | (at + 2)))],
    ["a record cut short", (q) => good(q).subarray(0, good(q).length - 2)],
    ["a record longer than its data", (q) => {
      const message = good(q);
      message.set(u16(200), message.length - (q.type === TYPE_A ? 4 : 16) - 2);
      return message;
    }],
    ["an A record of 3 bytes", (q) =>
      reply(q, {
        answers: [{ name: q.name, type: q.type, data: Uint8Array.of(1, 2, 3) }],
      })],
  ];
  for (const [what, make] of cases) {
    await t.step(what, async () => {
      await using server = FakeDnsServer.start((q) => [make(q)]);
      const resolver = new Resolver({ servers: via(server), attempts: 2 });
      await resolveFails(resolver, "hostile.test", "malformed");
      assert.equal(server.queries.length, 4);
      assert.equal(resolver.stats.cacheSize, 0);
    });
  }
});

/** An answer of one A record whose name is `name(offset of the name)`: raw bytes. */
function withRecordName(query: FakeQuery, name: (at: number) => Uint8Array): Uint8Array {
  const head = reply(query);
  const record = concat([
    name(head.length),
    u16(TYPE_A),
    u16(1),
    u32(1),
    u16(4),
    Uint8Array.of(1, 2, 3, 4),
  ]);
  const out = concat([head, record]);
  out.set(u16(1), 6);
  return out;
}

Deno.test("Resolver asks over TCP when the UDP answer is truncated", async (t) => {
  await t.step("and takes the TCP answer", async () => {
    await using server = FakeDnsServer.start((q) =>
      q.transport === "udp" ? [reply(q, { truncated: true })] : [good(q)]
    );
    const resolver = new Resolver({ servers: via(server) });
    assert.deepEqual(await resolver.resolve("tc.test", V4), GOOD);
    assert.deepEqual(server.queries.map((q) => q.transport).sort(), ["tcp", "tcp", "udp", "udp"]);
    assert.equal(resolver.stats.tcpFallbacks, 2);
  });
  await t.step("a TCP answer with another ID is malformed", async () => {
    await using server = FakeDnsServer.start((q) =>
      q.transport === "udp" ? [reply(q, { truncated: true })] : [good({ ...q, id: q.id ^ 1 })]
    );
    const resolver = new Resolver({ servers: via(server), attempts: 1 });
    await resolveFails(resolver, "tc.test", "malformed");
  });
  await t.step("a TCP server that hangs up counts as a timeout", async () => {
    await using server = FakeDnsServer.start((q) =>
      q.transport === "udp" ? [reply(q, { truncated: true })] : []
    );
    const resolver = new Resolver({ servers: via(server), attempts: 1 });
    await resolveFails(resolver, "tc.test", "timeout");
    assert.equal(resolver.stats.timeouts, 2);
  });
});

Deno.test("Resolver reports SERVFAIL when every attempt fails so", async () => {
  await using server = FakeDnsServer.start((q) => [reply(q, { rcode: RCODE_SERVFAIL })]);
  const resolver = new Resolver({ servers: via(server) });
  await resolveFails(resolver, "fail.test", "servfail");
  assert.equal(server.queries.length, 4); // 2 attempts (the default for one server) × 2 types
  assert.equal(resolver.stats.errors.servfail, 1);
});

Deno.test("Resolver keeps one type's answer when the other type fails", async () => {
  await using server = FakeDnsServer.start((q) =>
    q.type === TYPE_AAAA ? [reply(q, { rcode: RCODE_SERVFAIL })] : [good(q)]
  );
  const resolver = new Resolver({ servers: via(server) });
  assert.deepEqual(await resolver.resolve("half.test", V6), ["192.0.2.1"]);
});

Deno.test("Resolver stops waiting when the caller's signal aborts; the query runs out", async () => {
  await using silent = FakeDnsServer.start(() => []);
  const resolver = new Resolver({ servers: via(silent), attempts: 1, timeoutMs: 300 });
  const controller = new AbortController();
  const reason = new Error("caller gave up");
  const pending = resolver.resolve("slow.test", { ipv6First: false, signal: controller.signal });
  const joined = resolver.resolve("slow.test", V4);
  await waitFor(() => silent.queries.length === 2, "both questions to arrive");
  controller.abort(reason);
  assert.equal(await rejection(pending), reason);
  // The other caller shares the query, which still ends by its own timeout.
  const error = await rejection(joined);
  assert.ok(error instanceof ResolveError && error.reason === "timeout");
  await assert.rejects(
    resolver.resolve("x.test", { ipv6First: false, signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
});

Deno.test("Resolver evicts the least recently used entries at cacheSize", async () => {
  await using server = FakeDnsServer.start((q) => [good(q)]);
  const resolver = new Resolver({ servers: via(server), cacheSize: 4 }); // two names
  await resolver.resolve("a.test", V4);
  await resolver.resolve("b.test", V4);
  await resolver.resolve("a.test", V4); // a is now the most recent
  await resolver.resolve("c.test", V4); // pushes b out
  assert.equal(resolver.stats.queries, 6);
  await resolver.resolve("a.test", V4);
  assert.equal(resolver.stats.queries, 6);
  await resolver.resolve("b.test", V4);
  assert.equal(resolver.stats.queries, 8);
  assert.equal(resolver.stats.cacheSize, 4);
});

/**
 * A fake rather than dnsmasq: dnsmasq needs 8 s for this, drops a few datagrams under the load
 * (each then costs a 2 s timeout), and answers `--address` names with TTL 0 (nothing cached).
 * Counts are of cache lookups, not datagrams, so a lost datagram cannot change them.
 */
Deno.test("Resolver's cache stays at its bound under 20 000 distinct names", async () => {
  await using server = FakeDnsServer.start((q) => [good(q)]);
  const cacheSize = 1000;
  const resolver = new Resolver({ servers: via(server), cacheSize });
  const names = Array.from({ length: 20_000 }, (_, i) => `n${i}.flood.test`);
  let largest = 0;
  for (let i = 0; i < names.length; i += 500) {
    const batch = names.slice(i, i + 500);
    const results = await Promise.all(batch.map((name) => resolver.resolve(name, V4)));
    assert.deepEqual(results[0], GOOD);
    largest = Math.max(largest, resolver.stats.cacheSize);
  }
  assert.equal(largest, cacheSize);
  assert.deepEqual([resolver.stats.cacheMisses, resolver.stats.cacheHits], [40_000, 0]);
  // The newest names are cached, the oldest were evicted.
  await resolver.resolve(names.at(-1)!, V4);
  assert.deepEqual([resolver.stats.cacheMisses, resolver.stats.cacheHits], [40_000, 2]);
  await resolver.resolve(names[0]!, V4);
  assert.deepEqual([resolver.stats.cacheMisses, resolver.stats.cacheHits], [40_002, 2]);
  assert.equal(resolver.stats.cacheSize, cacheSize);
});

Deno.test("Resolver asks an IPv6 server from an IPv6 socket and checks its address", async () => {
  await using server = FakeDnsServer.start((q) => [good(q)], "::1");
  const resolver = new Resolver({ servers: [{ host: "0:0::1", port: server.port }] });
  assert.deepEqual(await resolver.resolve("six.test", V6), ["2001:db8::1", "192.0.2.1"]);
  assert.equal(resolver.stats.dropped, 0);
});

Deno.test("Resolver without servers asks the system resolver and keeps answers systemTtlS", async () => {
  const calls: string[] = [];
  const systemLookup = (name: string, family: 4 | 6): Promise<string[]> => {
    calls.push(`${family === 4 ? "A" : "AAAA"} ${name}`);
    if (name === "gone.test") return Promise.resolve([]);
    if (name === "flaky.test") return Promise.reject(new Error("EAI_AGAIN"));
    return Promise.resolve(family === 4 ? ["192.0.2.7"] : ["2001:db8::7"]);
  };
  const clock = manualClock();
  const resolver = new Resolver({ now: clock.now, systemTtlS: 60, negativeTtlS: 10, systemLookup });
  assert.deepEqual(await resolver.resolve("Sys.test", V6), ["2001:db8::7", "192.0.2.7"]);
  clock.advance(59_999);
  await resolver.resolve("sys.test", V4);
  assert.equal(calls.length, 2);
  clock.advance(1);
  await resolver.resolve("sys.test", V4);
  assert.equal(calls.length, 4);
  // No address (no such name alike) is nodata, kept for negativeTtlS.
  await resolveFails(resolver, "gone.test", "nodata");
  clock.advance(9_999);
  await resolveFails(resolver, "gone.test", "nodata");
  assert.equal(calls.length, 6);
  clock.advance(1);
  await resolveFails(resolver, "gone.test", "nodata");
  assert.equal(calls.length, 8);
  assert.deepEqual(calls.slice(0, 2).sort(), ["A sys.test", "AAAA sys.test"]);
  // A temporary failure is not kept.
  await resolveFails(resolver, "flaky.test", "servfail");
  await resolveFails(resolver, "flaky.test", "servfail");
  assert.equal(calls.length, 12);
});

Deno.test("the default system resolver reads /etc/hosts as other programs do (getaddrinfo)", async () => {
  const resolver = new Resolver();
  assert.equal((await resolver.resolve("localhost", V4))[0], "127.0.0.1");
  const hosts = await Deno.readTextFile("/etc/hosts").catch(() => "");
  const named = /^127\.0\.0\.1\s+(\S+)/m.exec(hosts);
  if (named && named[1] !== "localhost") {
    const addresses = await resolver.resolve(named[1]!, V4);
    assert.ok(addresses.includes("127.0.0.1"), `${named[1]} → ${addresses}`);
  }
  await resolveFails(resolver, "no-such-name.invalid", "nodata");
});

Deno.test("Resolver checks its options", () => {
  assert.throws(() => new Resolver({ servers: [{ host: "dns.example", port: 53 }] }), RangeError);
  assert.throws(() => new Resolver({ servers: [{ host: "127.0.0.1", port: 0 }] }), RangeError);
  assert.throws(() => new Resolver({ cacheSize: -1 }), RangeError);
  assert.throws(() => new Resolver({ minTtlS: 10, maxTtlS: 5 }), RangeError);
  assert.throws(() => new Resolver({ timeoutMs: 0 }), RangeError);
  assert.throws(() => new Resolver({ attempts: 0 }), RangeError);
});
