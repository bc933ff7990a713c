import { ProtocolError } from "../../protocol/errors.ts";
import {
  encodeSocks4Reply,
  parseSocks4Request,
  SOCKS4_BIND,
  SOCKS4_CONNECT,
  Socks4Reply,
} from "../../protocol/socks4.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { hex, toHex, utf8 } from "../_vectors.ts";

/** The SOCKS4.protocol example shape: CONNECT 66.102.7.99:80 for user "fred". */
const SOCKS4 = hex("0401005042660763" + "66726564" + "00");
/** SOCKS4a: DSTIP 0.0.0.255 (ss-rust's placeholder), then the name. */
const SOCKS4A = Uint8Array.of(
  ...hex("040101bb000000ff"),
  ...utf8("fred"),
  0,
  ...utf8("example.com"),
  0,
);

Deno.test("parseSocks4Request() returns need-more on every strict prefix", async (t) => {
  for (const [name, bytes] of [["SOCKS4", SOCKS4], ["SOCKS4a", SOCKS4A]] as const) {
    await t.step(name, () => {
      for (let n = 0; n < bytes.length; n++) {
        assertEquals(parseSocks4Request(bytes.subarray(0, n)), undefined, `prefix ${n}`);
      }
    });
  }
});

Deno.test("parseSocks4Request() reads SOCKS4 and SOCKS4a targets", () => {
  assertEquals(parseSocks4Request(SOCKS4), {
    command: SOCKS4_CONNECT,
    address: { type: "ipv4", host: "66.102.7.99", port: 80 },
    userId: "fred",
    length: SOCKS4.length,
  });
  assertEquals(parseSocks4Request(SOCKS4A), {
    command: SOCKS4_CONNECT,
    address: { type: "domain", host: "example.com", port: 443 },
    userId: "fred",
    length: SOCKS4A.length,
  });
});

Deno.test("parseSocks4Request() leaves pipelined data and reads BIND and empty user ids", () => {
  const bytes = Uint8Array.of(...hex("04020050c0a80001"), 0, 0x47, 0x45, 0x54);
  assertEquals(parseSocks4Request(bytes), {
    command: SOCKS4_BIND,
    address: { type: "ipv4", host: "192.168.0.1", port: 80 },
    userId: "",
    length: 9,
  });
  // 0.0.0.0 is not the SOCKS4a pattern (x must be non-zero): a plain, unusable IPv4 target.
  assertEquals(parseSocks4Request(hex("04010050000000000000"))?.address.host, "0.0.0.0");
  // A SOCKS4a name that is an IP literal becomes that literal.
  const literal = Uint8Array.of(...hex("0401005000000001"), 0, ...utf8("10.0.0.1"), 0);
  assertEquals(parseSocks4Request(literal)?.address, { type: "ipv4", host: "10.0.0.1", port: 80 });
});

Deno.test("parseSocks4Request() bounds the user id and the host name to 255 bytes", () => {
  const head = hex("0401005001020304");
  const user255 = Uint8Array.of(...head, ...new Uint8Array(255).fill(0x75), 0);
  assertEquals(parseSocks4Request(user255)?.userId.length, 255);
  // Without a NULL after 255 bytes, more input cannot help.
  const user256 = Uint8Array.of(...head, ...new Uint8Array(256).fill(0x75));
  assertOk(assertThrows(() => parseSocks4Request(user256)) instanceof ProtocolError);
  assertEquals(parseSocks4Request(user256.subarray(0, 8 + 255)), undefined);
  // A NULL that comes too late does not make it acceptable.
  const late = Uint8Array.of(...user256, 0);
  assertOk(assertThrows(() => parseSocks4Request(late)) instanceof ProtocolError);

  const head4a = hex("04010050000000ff");
  const host255 = Uint8Array.of(...head4a, 0, ...new Uint8Array(255).fill(0x61), 0);
  assertEquals(parseSocks4Request(host255)?.address.host.length, 255);
  assertEquals(parseSocks4Request(host255)?.length, 8 + 1 + 256);
  const host256 = Uint8Array.of(...head4a, 0, ...new Uint8Array(256).fill(0x61));
  assertOk(assertThrows(() => parseSocks4Request(host256)) instanceof ProtocolError);
  const lateHost = Uint8Array.of(...host256, 0);
  assertOk(assertThrows(() => parseSocks4Request(lateHost)) instanceof ProtocolError);
});

Deno.test("parseSocks4Request() refuses other versions and bad SOCKS4a names", () => {
  const cases: [Uint8Array, string][] = [
    [hex("0501005001020304"), "ERR_CLIENT_PROTOCOL"],
    [hex("4745"), "ERR_CLIENT_PROTOCOL"],
    [hex("04010050000000ff" + "00" + "00"), "ERR_READ_ADDRESS"],
    [hex("04010050000000ff" + "00" + "ff00"), "ERR_READ_ADDRESS"],
  ];
  for (const [bytes, code] of cases) {
    const error = assertThrows(() => parseSocks4Request(bytes));
    assertOk(error instanceof ProtocolError);
    assertEquals(error.code, code);
  }
});

Deno.test("encodeSocks4Reply() writes VN 0, CD and the optional IPv4 bound address", () => {
  assertEquals(toHex(encodeSocks4Reply(Socks4Reply.granted)), "005a000000000000");
  assertEquals(toHex(encodeSocks4Reply(Socks4Reply.rejected)), "005b000000000000");
  assertEquals(
    toHex(encodeSocks4Reply(Socks4Reply.granted, { type: "ipv4", host: "127.0.0.1", port: 1080 })),
    "005a04387f000001",
  );
  assertEquals(
    toHex(encodeSocks4Reply(Socks4Reply.granted, { type: "ipv6", host: "::1", port: 1080 })),
    "005a000000000000",
  );
});
