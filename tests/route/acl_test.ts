import { type Address, addressFromHost } from "../../protocol/address.ts";
import { parseAcl } from "../../protocol/acl.ts";
import { AccessControl, normalizeName, type Resolve } from "../../route/acl.ts";
import { assertEquals, assertOk } from "../_assert.ts";
import { loadVectors } from "../_vectors.ts";

interface AclCase {
  id: string;
  acl: string;
  target: string;
  role: "local" | "server" | "server-client";
  expected: "proxy" | "bypass" | "block";
  dns?: Record<string, string[] | null>;
  note?: string;
}

/** `host:port` or a bare host (the server-client cases give only the client's address). */
function targetOf(text: string): Address {
  const match = /^([^:]+):(\d+)$/.exec(text);
  return match ? addressFromHost(match[1]!, Number(match[2])) : addressFromHost(text, 0);
}

/** A resolver answering from a case's `dns` field (null or absent: resolution fails), counting calls. */
function fakeResolver(dns: Record<string, string[] | null> = {}): Resolve & { calls: string[] } {
  const calls: string[] = [];
  const resolve = (name: string) => {
    calls.push(name);
    const answer = dns[name];
    return answer ? Promise.resolve(answer) : Promise.reject(new Error(`No answer for ${name}`));
  };
  return Object.assign(resolve, { calls });
}

/**
 * The one vector without a `dns` answer whose semantics still require a query: its bypass list
 * holds an IP rule under [proxy_all], so `localhost` must be resolved; a failure (what the fake
 * gives) and a non-matching answer both take the default.
 */
const RESOLVES_WITHOUT_ANSWER = new Set(["whitespace-only-line"]);

Deno.test("AccessControl decides every case of acl_cases.json as expected", async (t) => {
  const { cases } = (await loadVectors("acl_cases.json")) as { cases: AclCase[] };
  assertEquals(cases.length, 20);
  for (const c of cases) {
    await t.step(`${c.id} (${c.role} ${c.target} → ${c.expected})`, async () => {
      const acl = new AccessControl(parseAcl(c.acl));
      const target = targetOf(c.target);
      const resolve = fakeResolver(c.dns);
      let actual: string;
      if (c.role === "local") {
        actual = await acl.checkTarget(target, resolve);
      } else if (c.role === "server") {
        actual = (await acl.checkOutbound(target, resolve)) === "allow" ? "proxy" : "block";
      } else {
        actual = acl.isClientBlocked(target.host) ? "block" : "proxy";
      }
      assertEquals(actual, c.expected);
      const expectedCalls = c.dns || RESOLVES_WITHOUT_ANSWER.has(c.id) ? [target.host] : [];
      assertEquals(resolve.calls, expectedCalls, "resolver calls");
    });
  }
});

Deno.test("checkTarget() takes the default whatever a non-matching name resolves to", async () => {
  const acl = new AccessControl(parseAcl("[proxy_all]\n[bypass_list]\n  \n127.0.0.9\n"));
  const localhost = { type: "domain", host: "localhost", port: 80 } as const;
  assertEquals(
    await acl.checkTarget(localhost, fakeResolver({ localhost: ["127.0.0.1"] })),
    "proxy",
  );
  assertEquals(
    await acl.checkTarget(localhost, fakeResolver({ localhost: ["127.0.0.9"] })),
    "bypass",
  );
  assertEquals(await acl.checkTarget(localhost, fakeResolver({ localhost: [] })), "proxy");
});

Deno.test("checkTarget() looks for ANY resolved address in the mode's list only (v1.23.5)", async () => {
  const text = "[bypass_list]\n10.0.0.0/8\n[proxy_list]\n1.0.1.0/24\n";
  const name = { type: "domain", host: "a.example", port: 443 } as const;
  // One address in each list, in both orders: only the mode's list decides, at any position.
  for (const answer of [["1.0.1.1", "10.1.1.1"], ["10.1.1.1", "1.0.1.1"]]) {
    const resolve = fakeResolver({ "a.example": answer });
    const black = new AccessControl(parseAcl(text));
    assertOk(black.resolvesTargets);
    assertEquals(await black.checkTarget(name, resolve), "bypass", `[proxy_all] ${answer}`);
    const white = new AccessControl(parseAcl(`[bypass_all]\n${text}`));
    assertEquals(await white.checkTarget(name, resolve), "proxy", `[bypass_all] ${answer}`);
  }
  const white = new AccessControl(parseAcl(`[bypass_all]\n${text}`));
  const other = fakeResolver({ "a.example": ["10.1.1.1", "192.0.2.1"] });
  assertEquals(await white.checkTarget(name, other), "bypass");
});

Deno.test("checkTarget() never resolves when the mode's list has no IP rules", async () => {
  const acl = new AccessControl(parseAcl("[bypass_all]\n[bypass_list]\n10.0.0.0/8\n"));
  assertEquals(acl.resolvesTargets, false);
  const resolve = fakeResolver({ "x.example": ["10.0.0.1"] });
  assertEquals(
    await acl.checkTarget({ type: "domain", host: "x.example", port: 1 }, resolve),
    "bypass",
  );
  assertEquals(resolve.calls, []);
});

Deno.test("checkTarget() matches names case-insensitively, without the trailing dot, as punycode", async () => {
  const acl = new AccessControl(
    parseAcl("[bypass_list]\n||example.com\n|xn--bcher-kva.example\n"),
  );
  const resolve = fakeResolver();
  for (const host of ["WWW.Example.COM.", "example.com", "bücher.example", "BÜCHER.example."]) {
    assertEquals(await acl.checkTarget({ type: "domain", host, port: 1 }, resolve), "bypass", host);
  }
  assertEquals(
    await acl.checkTarget({ type: "domain", host: "example.com.evil", port: 1 }, resolve),
    "proxy",
  );
  assertEquals(resolve.calls, []);
  assertEquals(normalizeName("Bücher.Example."), "xn--bcher-kva.example");
  assertEquals(normalizeName("a@b.example"), "a@b.example");
});

Deno.test("checkTarget() checks a name that is an IP literal as that IP, without resolving", async () => {
  const acl = new AccessControl(parseAcl("[bypass_list]\n127.0.0.0/8\n::1\n"));
  const resolve = fakeResolver();
  assertEquals(
    await acl.checkTarget({ type: "domain", host: "127.0.0.5", port: 1 }, resolve),
    "bypass",
  );
  assertEquals(
    await acl.checkTarget({ type: "domain", host: "[::1]", port: 1 }, resolve),
    "bypass",
  );
  assertEquals(await acl.checkTarget({ type: "ipv6", host: "::2", port: 1 }, resolve), "proxy");
  assertEquals(resolve.calls, []);
});

Deno.test("IP rules match IPv4-mapped IPv6 addresses both ways", async () => {
  const acl = new AccessControl(parseAcl("[bypass_list]\n10.0.0.0/8\n::ffff:192.168.0.0/112\n"));
  const resolve = fakeResolver();
  const check = (type: "ipv4" | "ipv6", host: string) =>
    acl.checkTarget({ type, host, port: 1 }, resolve);
  assertEquals(await check("ipv6", "::ffff:10.1.2.3"), "bypass");
  assertEquals(await check("ipv4", "192.168.7.7"), "bypass");
  assertEquals(await check("ipv4", "192.169.7.7"), "proxy");
  assertEquals(await check("ipv6", "::10.1.2.3"), "proxy"); // IPv4-compatible form is not mapped
  assertOk(acl.isClientBlocked("::ffff:10.9.9.9"));
});

Deno.test("isClientBlocked() follows the mode: black list or white list", () => {
  const black = new AccessControl(parseAcl("[accept_all]\n[black_list]\n192.0.2.0/24\n"));
  assertOk(black.checksClients);
  assertEquals(black.isClientBlocked("192.0.2.9"), true);
  assertEquals(black.isClientBlocked("198.51.100.1"), false);
  const white = new AccessControl(parseAcl("[reject_all]\n[white_list]\n192.0.2.0/24\n"));
  assertEquals(white.isClientBlocked("192.0.2.9"), false);
  assertEquals(white.isClientBlocked("fe80::1%eth0"), true);
  assertEquals(white.isClientBlocked("not an address"), true);
  const none = new AccessControl(parseAcl("[proxy_list]\n10.0.0.0/8\n"));
  assertEquals(none.checksClients, false);
  assertEquals(none.isClientBlocked("10.0.0.1"), false);
});

Deno.test("checkOutbound() orders block names, allow names, then the outbound mode's IP list", async () => {
  const text = "[outbound_block_all]\n[outbound_allow_list]\n||good.example\n203.0.113.0/24\n" +
    "[outbound_block_list]\n|bad.good.example\n192.0.2.1\n";
  const acl = new AccessControl(parseAcl(text));
  assertOk(acl.checksOutbound);
  assertOk(acl.resolvesOutbound);
  const resolve = fakeResolver({ "x.example": ["192.0.2.1", "203.0.113.5"], "y.example": null });
  const check = (host: string) => acl.checkOutbound(addressFromHost(host, 443), resolve);
  assertEquals(await check("bad.good.example"), "block");
  assertEquals(await check("www.good.example"), "allow");
  assertEquals(await check("192.0.2.1"), "block");
  assertEquals(await check("203.0.113.9"), "allow");
  assertEquals(await check("198.51.100.1"), "block");
  // Block-all mode consults only the allow list after resolving: 192.0.2.1 does not block.
  assertEquals(await check("x.example"), "allow");
  assertEquals(await check("y.example"), "block");
  assertEquals(resolve.calls, ["x.example", "y.example"]);
});

Deno.test("checkOutbound() allows everything, unresolved, when the file has no outbound rules", async () => {
  const acl = new AccessControl(parseAcl("[bypass_all]\n[proxy_list]\n10.0.0.0/8\n"));
  assertEquals(acl.checksOutbound, false);
  assertEquals(acl.resolvesOutbound, false);
  const resolve = fakeResolver();
  assertEquals(await acl.checkOutbound(addressFromHost("a.example", 1), resolve), "allow");
  assertEquals(await acl.checkOutbound(addressFromHost("10.0.0.1", 1), resolve), "allow");
  assertEquals(resolve.calls, []);
});
