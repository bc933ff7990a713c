import {
  AclError,
  type AclRules,
  MAX_ACL_BYTES,
  parseAcl,
  type ParsedIp,
  parseIp,
} from "../../protocol/acl.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";

function ip(text: string): ParsedIp {
  const parsed = parseIp(text);
  assertOk(parsed, `parseIp("${text}")`);
  return parsed;
}

function names(rules: AclRules) {
  return {
    exact: [...rules.exact].sort(),
    subdomains: [...rules.subdomains].sort(),
    regexes: rules.regexes.map((r) => r.source),
  };
}

Deno.test("parseAcl() lets the last mode header win, aliases included", () => {
  assertEquals(parseAcl("").mode, "BlackList");
  assertEquals(parseAcl("[bypass_all]").mode, "WhiteList");
  assertEquals(parseAcl("[reject_all]\n").mode, "WhiteList");
  assertEquals(parseAcl("[bypass_all]\n[accept_all]\n").mode, "BlackList");
  assertEquals(parseAcl("[accept_all]\n[white_list]\n1.1.1.1\n[bypass_all]\n").mode, "WhiteList");
  assertEquals(parseAcl("[outbound_block_all]\n").outboundMode, "WhiteList");
  assertEquals(parseAcl("[outbound_block_all]\n[outbound_allow_all]\n").outboundMode, "BlackList");
  // The two mode variables are independent.
  assertEquals(parseAcl("[outbound_block_all]\n").mode, "BlackList");
});

Deno.test("parseAcl() sends rules to the list of the last list header, bypass before any", () => {
  const acl = parseAcl(
    "|a.example\n[white_list]\n|b.example\n[black_list]\n|c.example\n[proxy_list]\n|d.example\n" +
      "[outbound_block_list]\n|e.example\n[outbound_allow_list]\n|f.example\n[bypass_list]\n" +
      "|g.example\n",
  );
  assertEquals([...acl.bypass.exact], ["a.example", "c.example", "g.example"]);
  assertEquals([...acl.proxy.exact], ["b.example", "d.example"]);
  assertEquals([...acl.outboundBlock.exact], ["e.example"]);
  assertEquals([...acl.outboundAllow.exact], ["f.example"]);
  assertEquals(acl.ruleCount, 7);
  assertEquals(acl.warnings, []);
});

Deno.test("parseAcl() reads headers trimmed but case-sensitive; other [...] lines are regexes", () => {
  const acl = parseAcl("  [bypass_all]\t\r\n[PROXY_LIST]\n[a-c]x\n");
  assertEquals(acl.mode, "WhiteList");
  assertEquals(names(acl.bypass).regexes, ["[proxy_list]", "[a-c]x"]);
  assertEquals(acl.warnings.length, 1);
  assertOk(acl.warnings[0]!.startsWith("Line 2: unknown section"), acl.warnings[0]);
  assertOk(acl.bypass.matchesName("bx"));
});

Deno.test("parseAcl() treats a line as a comment only when '#' is its first character", () => {
  const acl = parseAcl("# comment\n#10.0.0.0/8\n  # indented\n127.0.0.2 # trailing comment\n");
  assertEquals(acl.bypass.hasIpRules, false);
  assertEquals(names(acl.bypass).regexes, ["# indented", "127.0.0.2 # trailing comment"]);
  assertEquals(acl.warnings.length, 2);
  assertOk(acl.warnings[0]!.startsWith("Line 3: "), acl.warnings[0]);
  assertOk(acl.warnings[1]!.startsWith("Line 4: "), acl.warnings[1]);
  assertOk(acl.warnings[1]!.includes("whitespace"), acl.warnings[1]);
});

Deno.test("parseAcl() skips empty and whitespace-only lines, warning about the latter", () => {
  const acl = parseAcl("\n\r\n  \n\t\n10.0.0.1\n");
  assertEquals(acl.ruleCount, 1);
  assertEquals(acl.bypass.hasNameRules, false);
  assertEquals(acl.warnings.length, 2);
  assertOk(acl.warnings[0]!.startsWith("Line 3: whitespace-only"), acl.warnings[0]);
  assertOk(!acl.bypass.matchesName("localhost"));
});

Deno.test("parseAcl() skips non-ASCII lines with a warning and reads bytes", () => {
  const bytes = new TextEncoder().encode("\uFEFF[bypass_all]\n||bücher.example\n|ok.example\n");
  const acl = parseAcl(Uint8Array.of(...bytes, 0xff, 0x0a));
  assertEquals(acl.mode, "WhiteList");
  assertEquals(names(acl.bypass).exact, ["ok.example"]);
  assertEquals(acl.bypass.subdomains.size, 0);
  assertEquals(acl.warnings.length, 2);
  assertOk(acl.warnings[0]!.startsWith("Line 2: non-ASCII"), acl.warnings[0]);
  assertOk(acl.warnings[1]!.startsWith("Line 4: non-ASCII"), acl.warnings[1]);
});

Deno.test("parseAcl() reads CIDRs of both families and ignores host bits", () => {
  const acl = parseAcl("10.9.0.32/16\n2000::/8\n192.0.2.7\n::1\n0.0.0.0/0\n");
  const other = parseAcl("10.9.0.32/16\n2001:db8::1234/32\n198.51.100.0/31\n");
  assertEquals(acl.bypass.rangeCounts, { ipv4: 1, ipv6: 2 }); // 0.0.0.0/0 swallows the rest
  for (const inside of ["10.9.0.0", "10.9.255.255", "10.9.0.32"]) {
    assertOk(other.bypass.matchesIp(ip(inside)), inside);
  }
  for (const outside of ["10.8.255.255", "10.10.0.0"]) {
    assertOk(!other.bypass.matchesIp(ip(outside)), outside);
  }
  assertOk(other.bypass.matchesIp(ip("2001:db8:ffff::")));
  assertOk(!other.bypass.matchesIp(ip("2001:db9::")));
  assertOk(other.bypass.matchesIp(ip("198.51.100.1")));
  assertOk(!other.bypass.matchesIp(ip("198.51.100.2")));
  assertOk(acl.bypass.matchesIp(ip("2000::")));
  assertOk(acl.bypass.matchesIp(ip("20ff:ffff::1")));
  assertOk(!acl.bypass.matchesIp(ip("2100::")));
  assertOk(acl.bypass.matchesIp(ip("::1")));
  assertOk(!acl.bypass.matchesIp(ip("::2")));
  assertEquals(acl.warnings, []);
});

Deno.test("parseAcl() merges overlapping ranges and matches at every range edge", () => {
  const acl = parseAcl("10.0.0.0/8\n10.3.0.0/16\n11.0.0.0/8\n1.2.3.4\n1.2.3.5\n1.2.3.7\n");
  assertEquals(acl.bypass.rangeCounts.ipv4, 5);
  for (const inside of ["10.0.0.0", "11.255.255.255", "1.2.3.4", "1.2.3.5", "1.2.3.7"]) {
    assertOk(acl.bypass.matchesIp(ip(inside)), inside);
  }
  for (const outside of ["9.255.255.255", "12.0.0.0", "1.2.3.3", "1.2.3.6", "1.2.3.8", "0.0.0.0"]) {
    assertOk(!acl.bypass.matchesIp(ip(outside)), outside);
  }
});

Deno.test("parseAcl() reads an invalid IP or CIDR as a regex, with a warning", () => {
  const acl = parseAcl("1.2.3.4/33\n::1/129\n010.0.0.1\n1.2.3.4/\n");
  assertEquals(acl.bypass.hasIpRules, false);
  assertEquals(acl.bypass.regexes.length, 4);
  assertEquals(acl.warnings.length, 4);
  assertOk(acl.warnings.every((w) => w.includes("not a valid IP address or CIDR")));
});

Deno.test("parseAcl() rewrites the regex shapes of ss-rust into sub-domain and exact rules", () => {
  const subdomain = [
    "(^|\\.)d\\.com$",
    "(?:^|\\.)d\\.com$",
    "\\.d\\.com$",
    "^.*\\.d\\.com$",
    "^.+\\.d\\.com$",
    "(^|\\.)d\\.com",
    "\\.d\\.com",
    "^.*\\.d\\.com",
    "(^|\\.)D\\.Com$",
    "(^|\\.)d\\.com\\.$",
  ];
  for (const rule of subdomain) {
    assertEquals(names(parseAcl(rule).bypass), {
      exact: [],
      subdomains: ["d.com"],
      regexes: [],
    }, rule);
  }
  for (const rule of ["^d\\.com$", "^d\\.com", "^D\\.COM$"]) {
    assertEquals(names(parseAcl(rule).bypass), { exact: ["d.com"], subdomains: [], regexes: [] });
  }
  assertEquals(names(parseAcl("(^|\\.)my-host_1\\.example\\.org$").bypass).subdomains, [
    "my-host_1.example.org",
  ]);
  for (
    const rule of ["d\\.com", "^[a-z]{5}\\.baidu\\.com", "^\\.*\\.eu$", "^d.com$", "(^|.)d\\.com$"]
  ) {
    assertEquals(names(parseAcl(rule).bypass).regexes, [rule.toLowerCase()], rule);
  }
});

Deno.test("A sub-domain rule matches the name and names below it, nothing else", () => {
  for (const text of ["||d.com", "(^|\\.)d\\.com$", "\\.d\\.com", "||D.com."]) {
    const rules = parseAcl(text).bypass;
    for (const name of ["d.com", "a.d.com", "a.b.d.com"]) assertOk(rules.matchesName(name), name);
    for (const name of ["xd.com", "d.com.evil.net", "com", "d.co"]) {
      assertOk(!rules.matchesName(name), `${text} ${name}`);
    }
  }
  const exact = parseAcl("|d.com").bypass;
  assertOk(exact.matchesName("d.com"));
  assertOk(!exact.matchesName("a.d.com"));
});

Deno.test("Regex rules are searched, not anchored, and lower-cased like ss-rust", () => {
  const rules = parseAcl("localhos\nGOOGLE\n^ab+c$\n").bypass;
  assertOk(rules.matchesName("localhost"));
  assertOk(rules.matchesName("x.localhost.y"));
  assertOk(rules.matchesName("www.google.com"));
  assertOk(rules.matchesName("abbbc"));
  assertOk(!rules.matchesName("xabc"));
  assertOk(!rules.matchesName("example.com"));
  const escape = parseAcl("^\\D+$");
  assertEquals(escape.bypass.regexes[0]!.source, "^\\d+$");
  assertEquals(escape.warnings.length, 1);
  assertOk(escape.warnings[0]!.includes('"\\D" into "\\d"'), escape.warnings[0]);
});

Deno.test("parseAcl() skips an invalid regex with a warning instead of failing", () => {
  const acl = parseAcl("[proxy_list]\n(unclosed\n|ok.example\n*bad\n");
  assertEquals(acl.proxy.regexes.length, 0);
  assertEquals(acl.ruleCount, 1);
  assertEquals(acl.warnings.length, 2);
  assertOk(acl.warnings[0]!.startsWith('Line 2: invalid regex "(unclosed"'), acl.warnings[0]);
  assertOk(acl.warnings[1]!.startsWith('Line 4: invalid regex "*bad"'), acl.warnings[1]);
});

Deno.test("parseAcl() reads | and || rules without trailing dots, and warns about empty ones", () => {
  const acl = parseAcl("|A.Example.\n||B.example..\n|\n||\n");
  assertEquals(names(acl.bypass), { exact: ["a.example"], subdomains: ["b.example"], regexes: [] });
  assertEquals(acl.ruleCount, 2);
  assertEquals(acl.warnings.length, 2);
});

Deno.test("parseIp() reads strict IPv4 and IPv6 literals only", () => {
  assertEquals(parseIp("1.2.3.4"), { family: 4, value: 0x01020304 });
  assertEquals(parseIp("255.255.255.255"), { family: 4, value: 0xffffffff });
  assertEquals(parseIp("::ffff:1.2.3.4"), { family: 6, value: 0xffff01020304n });
  assertEquals(parseIp("2001:db8::1"), { family: 6, value: 0x20010db8000000000000000000000001n });
  for (
    const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1.2.3.4 ", "example.com", "::g", "1::2::3"]
  ) {
    assertEquals(parseIp(bad), undefined, bad);
  }
});

Deno.test("parseAcl() refuses input over the size limit and files with too many rules", () => {
  const big = assertThrows(() => parseAcl("#".repeat(MAX_ACL_BYTES + 1)));
  assertOk(big instanceof AclError);
  assertOk(parseAcl("#".repeat(MAX_ACL_BYTES)).ruleCount === 0);
  assertOk(assertThrows(() => parseAcl(new Uint8Array(11), { maxBytes: 10 })) instanceof AclError);
  const rules = "1.1.1.1\n2.2.2.2\n3.3.3.3\n";
  assertEquals(parseAcl(rules, { maxRules: 3 }).ruleCount, 3);
  const many = assertThrows(() => parseAcl(rules, { maxRules: 2 }));
  assertOk(many instanceof AclError);
  assertOk(many.message.includes("line 3"), many.message);
});

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
}

Deno.test("A 10 000-rule file parses and matches quickly and like a linear scan", () => {
  const next = random(20250704);
  const cidrs: { start: number; end: number }[] = [];
  const lines = ["[bypass_all]", "[proxy_list]"];
  for (let i = 0; i < 8_000; i++) {
    const length = 12 + (next() % 17);
    const size = 2 ** (32 - length);
    const start = next() - (next() % size);
    const base = start - (start % size);
    cidrs.push({ start: base, end: base + size - 1 });
    lines.push(
      `${base >>> 24}.${(base >>> 16) & 255}.${(base >>> 8) & 255}.${base & 255}/${length}`,
    );
  }
  for (let i = 0; i < 1_000; i++) {
    lines.push(`${(next() & 0xffff).toString(16)}:${i.toString(16)}::/32`);
  }
  for (let i = 0; i < 1_000; i++) lines.push(`(^|\\.)site${i}\\.example$`);
  const text = lines.join("\n");

  let started = performance.now();
  const acl = parseAcl(text);
  const parseMs = performance.now() - started;
  assertEquals(acl.ruleCount, 10_000);
  assertEquals(acl.warnings, []);

  const probes: ParsedIp[] = [];
  for (let i = 0; i < 100_000; i++) probes.push({ family: 4, value: next() });
  started = performance.now();
  let hits = 0;
  for (const probe of probes) if (acl.proxy.matchesIp(probe)) hits++;
  const lookupUs = ((performance.now() - started) * 1000) / probes.length;
  assertOk(hits > 0 && hits < probes.length, `hits ${hits}`);

  for (const probe of probes.slice(0, 2_000)) {
    const value = probe.value as number;
    const linear = cidrs.some((c) => c.start <= value && value <= c.end);
    assertEquals(acl.proxy.matchesIp(probe), linear, `${value}`);
  }
  assertOk(acl.proxy.matchesName("www.site999.example"));
  assertOk(!acl.proxy.matchesName("www.site1000.example"));
  // Generous bounds: a shared CI machine is slow, but a linear scan would be ~100x slower.
  assertOk(parseMs < 2_000, `parse took ${parseMs.toFixed(1)} ms`);
  assertOk(lookupUs < 20, `a lookup took ${lookupUs.toFixed(2)} µs`);
});
