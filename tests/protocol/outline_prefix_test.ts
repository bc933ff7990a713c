import {
  checkPrefix,
  MIN_RANDOM_SALT_BYTES,
  prefixFromCodePoints,
  prefixToUriValue,
} from "../../protocol/outline_prefix.ts";
import { assertConfigError } from "../config/_assert.ts";
import { assertEquals, assertOk } from "../_assert.ts";
import { hex, toHex } from "../_vectors.ts";

const WHERE = "ss:// URI prefix";

/** What a client does with the query value: form decoding, then one byte per code point. */
function fromUriValue(value: string): Uint8Array {
  const text = new URLSearchParams(`prefix=${value}`).get("prefix");
  assertOk(text !== null);
  return prefixFromCodePoints(text, WHERE);
}

Deno.test("prefixFromCodePoints() decodes the URL values of the Outline docs' prefix table", async (t) => {
  // NOTES §20.2 (outline-docs prefixing.md).
  const table: [string, string, string][] = [
    ["HTTP request", "POST%20", "504f535420"],
    ["HTTP response", "HTTP%2F1.1%20", "485454502f312e3120"],
    ["DNS over TCP", "%05%C3%9C_%C3%A0%01%20", "05dc5fe00120"],
    ["TLS ClientHello", "%16%03%01%00%C2%A8%01%01", "16030100a80101"],
    ["TLS Application Data", "%13%03%03%3F", "1303033f"],
    ["TLS ServerHello", "%16%03%03%40%00%02", "160303400002"],
    ["SSH", "SSH-2.0%0D%0A", "5353482d322e300d0a"],
  ];
  for (const [name, value, bytes] of table) {
    await t.step(name, () => {
      assertEquals(toHex(fromUriValue(value)), bytes);
      assertEquals(fromUriValue(prefixToUriValue(hex(bytes))), hex(bytes));
    });
  }
});

Deno.test("prefixFromCodePoints() rejects a raw %DC, which is invalid UTF-8 and decodes to U+FFFD", async () => {
  await assertConfigError(() => fromUriValue("%DC"), WHERE, "character out of range: U+FFFD");
});

Deno.test("prefixFromCodePoints() rejects any code point above U+00FF and names the source", async () => {
  await assertConfigError(
    () => prefixFromCodePoints("ab\u0100", `"prefix" in config.json`),
    `"prefix" in config.json`,
    "U+0100",
    "U+0000..U+00FF",
  );
  await assertConfigError(() => prefixFromCodePoints("\u{1F600}", WHERE), "U+1F600");
  assertEquals(prefixFromCodePoints("\u0000\u0080\u00ff", WHERE), hex("0080ff"));
  assertEquals(prefixFromCodePoints("", WHERE), new Uint8Array());
});

Deno.test("prefixFromCodePoints() reads a form-encoded + as a space byte", () => {
  assertEquals(fromUriValue("POST+"), hex("504f535420"));
  assertEquals(fromUriValue("%2B"), hex("2b"));
});

Deno.test("prefixToUriValue() writes UTF-8 escapes that decode back to every byte 0..255", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const value = prefixToUriValue(all);
  assertOk(/^[A-Za-z0-9\-_.!~*'()%]+$/.test(value), value);
  assertEquals(prefixToUriValue(hex("dc")), "%C3%9C");
  assertEquals(prefixToUriValue(hex("20")), "%20");
  assertEquals(fromUriValue(value), all);
});

Deno.test("checkPrefix() keeps 12 salt bytes random and warns above Outline's 16", async (t) => {
  assertEquals(MIN_RANDOM_SALT_BYTES, 12);
  const bytes = (n: number) => new Uint8Array(n).fill(0x41);
  await t.step("16-byte salt (aes-128-gcm): at most 4 bytes", async () => {
    assertEquals(checkPrefix(bytes(4), 16, WHERE), undefined);
    await assertConfigError(() => checkPrefix(bytes(5), 16, WHERE), WHERE, "at most 4 bytes");
    await assertConfigError(() => checkPrefix(bytes(16), 16, WHERE), "repeated salt");
  });
  await t.step("32-byte salt: 16 quiet, 17..20 warn, 21 rejected", async () => {
    assertEquals(checkPrefix(bytes(16), 32, WHERE), undefined);
    for (const n of [17, 20]) {
      const warning = checkPrefix(bytes(n), 32, WHERE);
      assertOk(warning !== undefined);
      assertOk(warning.includes(`${n} bytes`) && warning.includes("16"), warning);
    }
    await assertConfigError(() => checkPrefix(bytes(21), 32, WHERE), "at most 20 bytes");
  });
  await t.step("an empty prefix is always fine", () => {
    assertEquals(checkPrefix(new Uint8Array(), 16, WHERE), undefined);
    assertEquals(checkPrefix(new Uint8Array(), 0, WHERE), undefined);
  });
});
