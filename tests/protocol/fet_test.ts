import { describeFet, fetCheck, type FetRule } from "../../protocol/fet.ts";
import { assertEquals, assertOk } from "../_assert.ts";
import { hex, loadVectors } from "../_vectors.ts";

interface FetCase {
  name: string;
  hex: string;
  expected_exempt: boolean;
  rules: FetRule[];
  stats: {
    len: number;
    popcount_avg: number;
    set_bits: number;
    leading_printable: number;
    printable_fraction: number;
    longest_printable_run: number;
  };
}

const { cases }: { cases: FetCase[] } = await loadVectors("fet_cases.json");

/** The artifact's random 50-byte payload, appended after each tested prefix. */
const RANDOM_50 = hex(cases.find((c) => c.name === "random_control")!.hex);

function withRandomTail(prefix: Uint8Array): Uint8Array {
  const packet = new Uint8Array(prefix.length + RANDOM_50.length);
  packet.set(prefix);
  packet.set(RANDOM_50, prefix.length);
  return packet;
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

function round(value: number, decimals: number): number {
  return Number(value.toFixed(decimals));
}

Deno.test("fetCheck() gives every vector its exemption, rules and statistics", async (t) => {
  assertEquals(cases.length, 33);
  for (const c of cases) {
    await t.step(c.name, () => {
      const result = fetCheck(hex(c.hex));
      assertEquals(result.exempt, c.expected_exempt);
      assertEquals(result.rules, c.rules);
      assertEquals(result.len, c.stats.len);
      assertEquals(round(result.popcountAvg, 2), round(c.stats.popcount_avg, 2));
      assertEquals(result.setBits, c.stats.set_bits);
      assertEquals(result.leadingPrintable, c.stats.leading_printable);
      assertEquals(round(result.printableFraction, 4), c.stats.printable_fraction);
      assertEquals(result.longestRun, c.stats.longest_printable_run);
    });
  }
});

Deno.test("fetCheck() judges the Outline prefixes followed by random bytes as NOTES §20.6 says", async (t) => {
  const expectations: [string, Uint8Array, FetRule[]][] = [
    ["POST ", latin1("POST "), ["Ex5"]],
    ["HTTP/1.1 ", latin1("HTTP/1.1 "), ["Ex2"]],
    ["SSH-2.0\\r\\n", latin1("SSH-2.0\r\n"), ["Ex2"]],
    ["TLS ClientHello", hex("16030100a80101"), ["Ex5"]],
    ["TLS ServerHello", hex("160303400002"), ["Ex5"]],
    ["TLS 'Application Data' 13 03 03 3f", hex("1303033f"), []],
    ["DNS over TCP", hex("05dc5fe00120"), []],
    ["no prefix", new Uint8Array(), []],
  ];
  for (const [name, prefix, rules] of expectations) {
    await t.step(name, () => {
      const result = fetCheck(withRandomTail(prefix));
      assertEquals(result.rules, rules);
      assertEquals(result.exempt, rules.length > 0);
    });
  }
});

Deno.test("fetCheck() reports an empty packet as no data, not exempt, without NaN", () => {
  const result = fetCheck(new Uint8Array());
  assertEquals(result, {
    exempt: false,
    rules: [],
    popcountAvg: 0,
    setBits: 0,
    leadingPrintable: 0,
    printableFraction: 0,
    longestRun: 0,
    len: 0,
  });
  assertOk(describeFet(result).startsWith("no data"));
});

Deno.test("fetCheck() needs all three TLS header bytes and the space after an HTTP method", () => {
  assertEquals(fetCheck(hex("1603")).rules.includes("Ex5"), false);
  assertEquals(fetCheck(hex("160300")).rules.includes("Ex5"), true);
  assertEquals(fetCheck(hex("170309")).rules.includes("Ex5"), true);
  assertEquals(fetCheck(latin1("HEAD")).rules.includes("Ex5"), false);
  for (const method of ["GET ", "PUT ", "POST ", "HEAD "]) {
    assertEquals(fetCheck(withRandomTail(latin1(method))).rules, ["Ex5"], method);
  }
});

Deno.test("fetCheck() puts the Ex1 boundaries at exactly 3.4 and 4.6 set bits per byte", () => {
  // 0x0f has 4 set bits, 0x07 has 3 and 0x1f has 5; 5 bytes with 17 or 23 bits are on the edge.
  assertEquals(fetCheck(hex("0f0f07070f")).rules, []); // 18 bits: 3.6
  assertEquals(fetCheck(hex("0f0707070f")).rules, ["Ex1"]); // 17 bits: 3.4
  assertEquals(fetCheck(hex("1f1f1f0f0f")).rules, ["Ex1"]); // 23 bits: 4.6
  assertEquals(fetCheck(hex("1f1f0f0f0f")).rules, []); // 22 bits: 4.4
});

Deno.test("describeFet() names the rules that hold or the statistics that miss them", () => {
  assertEquals(
    describeFet(fetCheck(withRandomTail(hex("16030100a80101")))),
    "exempt by Ex5 (looks like a TLS record header)",
  );
  assertEquals(
    describeFet(fetCheck(withRandomTail(latin1("POST ")))),
    "exempt by Ex5 (looks like an HTTP request line)",
  );
  assertEquals(
    describeFet(fetCheck(latin1("abc"))),
    "exempt by Ex1 (3.33 bits set per byte, at most 3.4 or at least 4.6) and " +
      "Ex3 (100% of the bytes are printable)",
  );
  assertEquals(
    describeFet(fetCheck(RANDOM_50)),
    "not exempt: 4.10 bits set per byte, 0 leading printable bytes, 40% printable, " +
      "longest printable run 3",
  );
});
