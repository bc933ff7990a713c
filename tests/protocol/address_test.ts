import {
  addressFromHost,
  decodeAddress,
  encodeAddress,
  encodedAddressLength,
  formatIpv6,
  parseIpv6,
  UnsupportedAddressTypeError,
} from "../../protocol/address.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { hex, loadVectors, toHex } from "../_vectors.ts";

Deno.test("decodeAddress() parses the published address headers", async (t) => {
  const { vectors } = await loadVectors("socks_address.json");
  // deno-lint-ignore no-explicit-any
  const parses = vectors.filter((v: any) => v.kind === "parse");
  assertEquals(parses.length, 6);
  for (const v of parses) {
    await t.step(v.bytes_hex, () => {
      const decoded = decodeAddress(hex(v.bytes_hex));
      assertOk(decoded);
      const bytes = hex(v.bytes_hex);
      assertEquals(decoded.length, v.header_length ?? bytes.length);
      const expected = v.decoded ??
        (v.atyp === 4 ? `[${v.host}]:${v.port}` : `${v.host}:${v.port}`);
      const { host, port, type } = decoded.address;
      assertEquals(type === "ipv6" ? `[${host}]:${port}` : `${host}:${port}`, expected);
      assertEquals(toHex(encodeAddress(decoded.address)), v.bytes_hex);
      assertEquals(encodedAddressLength(decoded.address), bytes.length);
    });
  }
});

Deno.test("decodeAddress() returns need-more on every strict prefix", () => {
  for (
    const text of [
      "01080808080035",
      "030e7777772e676f6f676c652e636f6d0050",
      "04240468004005080500000000000010110050",
    ]
  ) {
    const bytes = hex(text);
    for (let n = 0; n < bytes.length; n++) {
      assertEquals(decodeAddress(bytes.subarray(0, n)), undefined, `prefix of ${n} bytes`);
    }
    assertEquals(decodeAddress(bytes)?.length, bytes.length);
  }
});

Deno.test("decodeAddress() refuses a zero-length domain and unknown address types", () => {
  const zero = assertThrows(() => decodeAddress(Uint8Array.of(0x03, 0x00, 0x00, 0x50)));
  assertOk(zero instanceof ProtocolError && zero.code === "ERR_READ_ADDRESS");
  for (const atyp of [0x00, 0x02, 0x05, 0x11, 0xff]) {
    const error = assertThrows(() => decodeAddress(Uint8Array.of(atyp, 1, 2, 3, 4, 5, 6)));
    assertOk(error instanceof UnsupportedAddressTypeError);
    assertEquals(error.atyp, atyp);
  }
});

Deno.test("encodeAddress() refuses names over 255 bytes and bad ports", () => {
  assertThrows(() => encodeAddress({ type: "domain", host: "a".repeat(256), port: 80 }));
  assertThrows(() => encodeAddress({ type: "domain", host: "", port: 80 }));
  assertThrows(() => encodeAddress({ type: "ipv4", host: "1.2.3.4", port: 65536 }));
  assertEquals(encodeAddress({ type: "domain", host: "a".repeat(255), port: 1 }).length, 259);
});

Deno.test("addressFromHost() tells IPv4, IPv6 and names apart", () => {
  assertEquals(addressFromHost("127.0.0.1", 1).type, "ipv4");
  assertEquals(addressFromHost("::1", 1), { type: "ipv6", host: "::1", port: 1 });
  assertEquals(addressFromHost("[::ffff:1.2.3.4]", 1), {
    type: "ipv6",
    host: "::ffff:102:304",
    port: 1,
  });
  assertEquals(addressFromHost("example.com", 1).type, "domain");
  assertEquals(addressFromHost("256.1.1.1", 1).type, "domain");
  assertEquals(addressFromHost("1:2:3:4:5:6:7:8:9", 1).type, "domain");
});

Deno.test("formatIpv6() compresses the longest zero run only", () => {
  assertEquals(formatIpv6(parseIpv6("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  assertEquals(formatIpv6(parseIpv6("0:0:0:0:0:0:0:0")), "::");
  assertEquals(formatIpv6(parseIpv6("1:0:2:3:4:5:6:7")), "1:0:2:3:4:5:6:7");
  assertEquals(formatIpv6(parseIpv6("fe80::")), "fe80::");
});
