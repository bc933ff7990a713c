import assert from "node:assert/strict";
import {
  answersQuery,
  decodeResponse,
  decodeResponseHead,
  DnsFormatError,
  DnsNameError,
  encodeQuery,
  interpretResponse,
  normalizeName,
  RCODE_FORMERR,
  RCODE_NOTIMP,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  TYPE_A,
  TYPE_AAAA,
  TYPE_CNAME,
  TYPE_SOA,
} from "../../protocol/dns.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { buildMessage, concat, encodeName, encodeRecord, u16, u32 } from "../relay/_dnsmasq.ts";

const TYPE_TXT = 16;

/** A response to `encodeQuery("www.example.com", TYPE_A, { id: 0x1234 })`. */
function answer(extra: Partial<Parameters<typeof buildMessage>[0]> = {}): Uint8Array {
  return buildMessage({
    id: 0x1234,
    question: { name: "www.example.com", type: TYPE_A },
    answers: [{ name: "www.example.com", type: TYPE_A, ttl: 300, data: "192.0.2.1" }],
    ...extra,
  });
}

const QUERY = encodeQuery("www.example.com", TYPE_A, { id: 0x1234 });

function assertFormatError(fn: () => unknown, message?: string): DnsFormatError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DnsFormatError, `${message ?? ""}: ${error}`);
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, "ERR_RESOLVE");
    return error;
  }
  assert.fail(`${message ?? ""}: expected DnsFormatError`);
}

/** The header and question of QUERY's answer, then `tail` as the answer section (1 record). */
function withAnswerBytes(tail: Uint8Array, ancount = 1): Uint8Array {
  const head = buildMessage({ id: 0x1234, question: { name: "www.example.com", type: TYPE_A } });
  const out = concat([head, tail]);
  out.set(u16(ancount), 6);
  return out;
}

Deno.test("encodeQuery() writes one recursive question with the RFC 1035 layout", () => {
  const query = encodeQuery("WWW.Example.COM.", TYPE_AAAA, { id: 0xbeef });
  assert.equal(query.name, "www.example.com");
  assert.deepEqual(
    [...query.bytes],
    [
      ...[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
      ...[3, 0x77, 0x77, 0x77, 7, ...new TextEncoder().encode("example"), 3, 0x63, 0x6f, 0x6d, 0],
      ...[0, 28, 0, 1],
    ],
  );
  const head = decodeResponseHead(query.bytes);
  assert.equal(head.isResponse, false);
  assert.deepEqual(head.question, { name: "www.example.com", type: TYPE_AAAA, class: 1 });
});

Deno.test("encodeQuery() picks a random ID by default", () => {
  const ids = new Set(Array.from({ length: 64 }, () => encodeQuery("a.test", TYPE_A).id));
  assert.ok(ids.size > 50, `only ${ids.size} distinct IDs in 64`);
});

Deno.test("normalizeName() enforces the RFC 1035 limits and lower-cases", async (t) => {
  const label63 = "a".repeat(63);
  const name253 = [label63, label63, label63, "b".repeat(61)].join(".");
  assert.equal(name253.length, 253);
  await t.step("accepts 253 characters, 63-character labels and one final dot", () => {
    assert.equal(normalizeName(name253), name253);
    assert.equal(normalizeName(`${name253}.`), name253);
    assert.equal(normalizeName("Under_Score.Example."), "under_score.example");
  });
  const bad: [string, string][] = [
    ["254 characters", `${name253}b`],
    ["a 64-character label", `${"a".repeat(64)}.test`],
    ["an empty label", "a..test"],
    ["a leading dot", ".test"],
    ["the empty name", ""],
    ["the root alone", "."],
    ["a space", "a b.test"],
    ["non-ASCII", "bücher.test"],
    ["a backslash", "a\\.test"],
  ];
  for (const [what, name] of bad) {
    await t.step(`rejects ${what}`, () => {
      const error = (() => {
        try {
          normalizeName(name);
        } catch (error) {
          return error;
        }
      })();
      assert.ok(error instanceof DnsNameError, String(error));
      assert.equal(error.code, "ERR_RESOLVE");
      assert.ok(error instanceof ProtocolError);
    });
  }
  await t.step("encodeQuery() checks the name before building anything", () => {
    assert.throws(() => encodeQuery(`${name253}b`, TYPE_A), DnsNameError);
  });
});

Deno.test("decodeResponse() reads header, question, answers and authority", () => {
  const response = decodeResponse(answer({
    authority: [{
      name: "example.com",
      type: TYPE_SOA,
      ttl: 900,
      data: { mname: "ns.example.com", rname: "hostmaster.example.com", serial: 7, minimum: 60 },
    }],
  }));
  assert.equal(response.id, 0x1234);
  assert.equal(response.isResponse, true);
  assert.equal(response.truncated, false);
  assert.equal(response.rcode, 0);
  assert.deepEqual(response.answers, [
    { name: "www.example.com", type: TYPE_A, class: 1, ttl: 300, data: "192.0.2.1" },
  ]);
  assert.deepEqual(response.authority, [{
    name: "example.com",
    type: TYPE_SOA,
    class: 1,
    ttl: 900,
    data: { mname: "ns.example.com", rname: "hostmaster.example.com", serial: 7, minimum: 60 },
  }]);
  assert.equal(decodeResponseHead(answer({ truncated: true })).truncated, true);
});

Deno.test("decodeResponse() follows backward compression pointers", () => {
  // Answer name = pointer to the question name at offset 12; CNAME data "cdn" + pointer to
  // "example.com" inside the question (offset 12 + 4 = 16).
  const cname = concat([
    Uint8Array.of(3),
    new TextEncoder().encode("cdn"),
    Uint8Array.of(0xc0, 16),
  ]);
  const message = withAnswerBytes(concat([
    Uint8Array.of(0xc0, 12),
    u16(TYPE_CNAME),
    u16(1),
    u32(60),
    u16(cname.length),
    cname,
  ]));
  const [record] = decodeResponse(message).answers;
  assert.deepEqual(record, {
    name: "www.example.com",
    type: TYPE_CNAME,
    class: 1,
    ttl: 60,
    data: "cdn.example.com",
  });
});

Deno.test("decodeResponse() rejects hostile names without looping", async (t) => {
  const recordAfter = (name: Uint8Array) =>
    withAnswerBytes(concat([name, u16(TYPE_A), u16(1), u32(1), u16(4), Uint8Array.of(1, 2, 3, 4)]));
  const answerAt = 12 + encodeName("www.example.com").length + 4; // offset of the answer name
  await t.step("a pointer to itself", () => {
    assertFormatError(() =>
      decodeResponse(recordAfter(Uint8Array.of(0xc0 | (answerAt >> 8), answerAt & 0xff)))
    );
  });
  await t.step("a pointer forward", () => {
    const to = answerAt + 2;
    assertFormatError(() => decodeResponse(recordAfter(Uint8Array.of(0xc0, to))));
  });
  await t.step("a two-pointer loop (label, then a pointer back to it)", () => {
    // At answerAt: label "a", then a pointer back to answerAt: a.a.a.a... until 255 octets.
    const error = assertFormatError(() =>
      decodeResponse(recordAfter(concat([Uint8Array.of(1, 0x61), Uint8Array.of(0xc0, answerAt)])))
    );
    assert.match(error.message, /longer than 255|pointers/);
  });
  await t.step("a chain of more than 32 pointers (each to the one before it)", () => {
    // Record 1 (TXT) carries the chain in its data: pointer 0 to the question name, pointer i
    // to pointer i - 1. Record 2's name is a pointer to the chain's last link.
    const chained = (links: number) => {
      const rdataAt = answerAt + 12;
      const chain = concat(
        Array.from(
          { length: links },
          (_, i) => u16(0xc000 | (i === 0 ? 12 : rdataAt + 2 * (i - 1))),
        ),
      );
      const txt = concat([u16(0xc00c), u16(TYPE_TXT), u16(1), u32(1), u16(chain.length), chain]);
      const last = u16(0xc000 | (rdataAt + 2 * (links - 1)));
      const a = concat([last, u16(TYPE_A), u16(1), u32(1), u16(4), Uint8Array.of(1, 2, 3, 4)]);
      return withAnswerBytes(concat([txt, a]), 2);
    };
    assert.equal(decodeResponse(chained(31)).answers[1]!.name, "www.example.com");
    assertFormatError(() => decodeResponse(chained(40)));
  });
  await t.step("a name over 255 octets", () => {
    const long = concat([
      ...Array.from({ length: 5 }, () => encodeName("x".repeat(60)).subarray(0, 61)),
      Uint8Array.of(0),
    ]);
    assertFormatError(() => decodeResponse(recordAfter(long)));
  });
  await t.step("reserved label types 0x40 and 0x80", () => {
    assertFormatError(() => decodeResponse(recordAfter(Uint8Array.of(0x41, 0x61, 0))));
    assertFormatError(() => decodeResponse(recordAfter(Uint8Array.of(0x81, 0x61, 0))));
  });
});

Deno.test("decodeResponse() rejects records that break their lengths", async (t) => {
  const record = (type: number, data: Uint8Array, length = data.length) =>
    withAnswerBytes(
      concat([encodeName("www.example.com"), u16(type), u16(1), u32(1), u16(length), data]),
    );
  await t.step("RDLENGTH past the end", () => {
    assertFormatError(() => decodeResponse(record(TYPE_A, Uint8Array.of(1, 2, 3, 4), 40)));
  });
  await t.step("an A record of 5 bytes, an AAAA record of 4", () => {
    assertFormatError(() => decodeResponse(record(TYPE_A, Uint8Array.of(1, 2, 3, 4, 5))));
    assertFormatError(() => decodeResponse(record(TYPE_AAAA, Uint8Array.of(1, 2, 3, 4))));
  });
  await t.step("a CNAME whose name does not fill RDLENGTH", () => {
    assertFormatError(() =>
      decodeResponse(record(TYPE_CNAME, concat([encodeName("a.b"), Uint8Array.of(0)])))
    );
  });
  await t.step("a CNAME whose name runs past RDLENGTH", () => {
    assertFormatError(() => decodeResponse(record(TYPE_CNAME, encodeName("a.b"), 3)));
  });
  await t.step("an SOA cut short", () => {
    const soa = encodeRecord({
      name: "example.com",
      type: TYPE_SOA,
      data: { mname: "ns.example.com", rname: "h.example.com", minimum: 1 },
    });
    const cut = soa.subarray(0, soa.length - 4);
    const data = cut.subarray(encodeName("example.com").length + 10);
    assertFormatError(() =>
      decodeResponse(
        withAnswerBytes(
          concat([
            encodeName("example.com"),
            u16(TYPE_SOA),
            u16(1),
            u32(1),
            u16(data.length),
            data,
          ]),
        ),
      )
    );
  });
  await t.step("more records counted than present", () => {
    const message = answer();
    message.set(u16(2), 6);
    assertFormatError(() => decodeResponse(message));
  });
  await t.step("two questions", () => {
    const message = answer();
    message.set(u16(2), 4);
    assertFormatError(() => decodeResponseHead(message));
  });
  await t.step("unknown types are skipped by their length", () => {
    const message = withAnswerBytes(
      concat([
        encodeRecord({
          name: "www.example.com",
          type: TYPE_TXT,
          data: Uint8Array.of(2, 0x68, 0x69),
        }),
        encodeRecord({ name: "www.example.com", type: TYPE_A, data: "192.0.2.9" }),
      ]),
      2,
    );
    assert.deepEqual(decodeResponse(message).answers.map((r) => r.data), [undefined, "192.0.2.9"]);
  });
});

Deno.test("decodeResponse() throws DnsFormatError on every strict prefix of a response", () => {
  const message = answer({
    answers: [
      { name: "www.example.com", type: TYPE_CNAME, data: "cdn.example.net" },
      { name: "cdn.example.net", type: TYPE_AAAA, data: "2001:db8::1" },
    ],
    authority: [{
      name: "example.net",
      type: TYPE_SOA,
      data: { mname: "a.b", rname: "c.d", minimum: 5 },
    }],
  });
  decodeResponse(message);
  for (let length = 0; length < message.length; length++) {
    assertFormatError(() => decodeResponse(message.subarray(0, length)), `prefix of ${length}`);
  }
});

Deno.test("decodeResponse() either decodes or throws DnsFormatError, for flipped and random bytes", () => {
  const message = answer({
    answers: [
      { name: "www.example.com", type: TYPE_CNAME, data: "cdn.example.net" },
      { name: "cdn.example.net", type: TYPE_A, data: "192.0.2.7" },
    ],
  });
  const tryDecode = (bytes: Uint8Array) => {
    try {
      decodeResponse(bytes);
    } catch (error) {
      assert.ok(error instanceof DnsFormatError, String(error));
    }
  };
  for (let i = 0; i < message.length; i++) {
    for (const mask of [0x01, 0x40, 0x80, 0xc0, 0xff]) {
      const flipped = message.slice();
      flipped[i]! ^= mask;
      tryDecode(flipped);
    }
  }
  for (let i = 0; i < 2000; i++) {
    const random = crypto.getRandomValues(new Uint8Array(12 + (i % 300)));
    tryDecode(random);
    // Random bytes after a valid header and question reach the record parser.
    tryDecode(concat([message.subarray(0, 33), random]));
  }
});

Deno.test("decodeResponse() escapes label bytes that could pose as other names", () => {
  const label = concat([Uint8Array.of(5), Uint8Array.of(0x61, 0x2e, 0x62, 0x00, 0x5c)]);
  const message = withAnswerBytes(
    concat([
      label,
      encodeName("test"),
      u16(TYPE_A),
      u16(1),
      u32(1),
      u16(4),
      Uint8Array.of(1, 2, 3, 4),
    ]),
  );
  assert.equal(decodeResponse(message).answers[0]!.name, "a\\046b\\000\\092.test");
});

Deno.test("answersQuery() needs the same ID, QR set and the same question", async (t) => {
  await t.step("matches, whatever the case of the echoed name", () => {
    assert.ok(answersQuery(decodeResponseHead(answer()), QUERY));
    const upper = answer({ question: { name: "WWW.EXAMPLE.COM", type: TYPE_A } });
    assert.ok(answersQuery(decodeResponseHead(upper), QUERY));
  });
  const mismatches: [string, Uint8Array][] = [
    ["another ID", answer({ id: 0x1235 })],
    ["QR clear", answer({ response: false })],
    ["another name", answer({ question: { name: "www.example.org", type: TYPE_A } })],
    ["another type", answer({ question: { name: "www.example.com", type: TYPE_AAAA } })],
    ["no question", answer({ question: null, answers: [] })],
  ];
  for (const [what, message] of mismatches) {
    await t.step(`rejects ${what}`, () => {
      assert.equal(answersQuery(decodeResponseHead(message), QUERY), false);
    });
  }
});

Deno.test("interpretResponse() reads answers, CNAME chains and TTLs", async (t) => {
  await t.step("the addresses of the question name, with the smallest TTL", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({
        answers: [
          { name: "www.example.com", type: TYPE_A, ttl: 300, data: "192.0.2.1" },
          { name: "www.example.com", type: TYPE_A, ttl: 120, data: "192.0.2.2" },
          // Records for other names or types are not the answer.
          { name: "other.example.com", type: TYPE_A, ttl: 1, data: "192.0.2.66" },
          { name: "www.example.com", type: TYPE_AAAA, ttl: 1, data: "2001:db8::66" },
        ],
      })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "answer", addresses: ["192.0.2.1", "192.0.2.2"], ttlS: 120 });
  });
  await t.step("a CNAME chain to the addresses; the TTL is the chain's smallest", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({
        answers: [
          { name: "WWW.example.com", type: TYPE_CNAME, ttl: 50, data: "a.cdn.net" },
          { name: "a.cdn.net", type: TYPE_CNAME, ttl: 40, data: "b.cdn.net" },
          { name: "b.cdn.net", type: TYPE_A, ttl: 300, data: "198.51.100.1" },
        ],
      })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "answer", addresses: ["198.51.100.1"], ttlS: 40 });
  });
  await t.step("a TTL with the top bit set counts as 0 (RFC 2181 §8)", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({
        answers: [{ name: "www.example.com", type: TYPE_A, ttl: 0x8000_0000, data: "192.0.2.1" }],
      })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "answer", addresses: ["192.0.2.1"], ttlS: 0 });
  });
  await t.step("a CNAME loop is malformed", () => {
    assertFormatError(() =>
      interpretResponse(
        decodeResponse(answer({
          answers: [
            { name: "www.example.com", type: TYPE_CNAME, data: "a.cdn.net" },
            { name: "a.cdn.net", type: TYPE_CNAME, data: "www.example.com" },
          ],
        })),
        QUERY,
      )
    );
  });
  await t.step("a CNAME chain over 16 names is malformed", () => {
    const answers = Array.from({ length: 20 }, (_, i) => ({
      name: i === 0 ? "www.example.com" : `c${i}.test`,
      type: TYPE_CNAME,
      data: `c${i + 1}.test`,
    }));
    assertFormatError(() => interpretResponse(decodeResponse(answer({ answers })), QUERY));
  });
});

Deno.test("interpretResponse() gives negative answers the RFC 2308 caching time", async (t) => {
  const soa = (ttl: number, minimum: number) => ({
    name: "example.com",
    type: TYPE_SOA,
    ttl,
    data: { mname: "ns.example.com", rname: "h.example.com", minimum },
  });
  await t.step("NXDOMAIN: min(SOA TTL, SOA MINIMUM)", () => {
    const outcome = (ttl: number, minimum: number) =>
      interpretResponse(
        decodeResponse(
          answer({ rcode: RCODE_NXDOMAIN, answers: [], authority: [soa(ttl, minimum)] }),
        ),
        QUERY,
      );
    assert.deepEqual(outcome(900, 60), { kind: "nxdomain", ttlS: 60 });
    assert.deepEqual(outcome(30, 60), { kind: "nxdomain", ttlS: 30 });
  });
  await t.step("NODATA: no record of the type, NOERROR", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({
        answers: [{ name: "www.example.com", type: TYPE_AAAA, data: "2001:db8::1" }],
        authority: [soa(900, 45)],
      })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "nodata", ttlS: 45 });
  });
  await t.step("without an SOA: no caching time", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({ rcode: RCODE_NXDOMAIN, answers: [] })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "nxdomain", ttlS: undefined });
  });
  await t.step("NXDOMAIN at the end of a CNAME chain is bounded by the chain's TTL", () => {
    const outcome = interpretResponse(
      decodeResponse(answer({
        rcode: RCODE_NXDOMAIN,
        answers: [{ name: "www.example.com", type: TYPE_CNAME, ttl: 20, data: "gone.example.net" }],
        authority: [soa(900, 600)],
      })),
      QUERY,
    );
    assert.deepEqual(outcome, { kind: "nxdomain", ttlS: 20 });
  });
});

Deno.test("interpretResponse() reports server failures by RCODE", () => {
  const kind = (rcode: number) =>
    interpretResponse(decodeResponse(answer({ rcode, answers: [] })), QUERY);
  assert.deepEqual(kind(RCODE_SERVFAIL), { kind: "servfail", rcode: RCODE_SERVFAIL });
  assert.deepEqual(kind(RCODE_REFUSED), { kind: "refused", rcode: RCODE_REFUSED });
  assert.deepEqual(kind(RCODE_FORMERR), { kind: "servfail", rcode: RCODE_FORMERR });
  assert.deepEqual(kind(RCODE_NOTIMP), { kind: "servfail", rcode: RCODE_NOTIMP });
  // An answer with SERVFAIL is not trusted.
  assert.equal(
    interpretResponse(decodeResponse(answer({ rcode: RCODE_SERVFAIL })), QUERY).kind,
    "servfail",
  );
});
