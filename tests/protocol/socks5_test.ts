import { ProtocolError } from "../../protocol/errors.ts";
import {
  encodeReply,
  parseGreeting,
  parseRequest,
  Reply,
  SocksRequestError,
} from "../../protocol/socks5.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { toHex } from "../_vectors.ts";

Deno.test("parseGreeting() waits for every method byte", () => {
  const greeting = Uint8Array.of(5, 3, 0, 1, 2);
  for (let n = 0; n < greeting.length; n++) {
    assertEquals(parseGreeting(greeting.subarray(0, n)), undefined);
  }
  const parsed = parseGreeting(greeting);
  assertEquals(parsed?.length, 5);
  assertEquals(Array.from(parsed!.methods), [0, 1, 2]);
});

Deno.test("parseGreeting() refuses other versions and an empty method list", () => {
  for (const bytes of [Uint8Array.of(4, 1, 0), Uint8Array.of(0x47, 0x45), Uint8Array.of(5, 0)]) {
    assertOk(assertThrows(() => parseGreeting(bytes)) instanceof ProtocolError);
  }
});

Deno.test("parseRequest() returns need-more on every strict prefix of a request", () => {
  const request = Uint8Array.of(5, 1, 0, 3, 11, ...new TextEncoder().encode("example.com"), 1, 187);
  for (let n = 0; n < request.length; n++) {
    assertEquals(parseRequest(request.subarray(0, n)), undefined);
  }
  const parsed = parseRequest(request);
  assertEquals(parsed, {
    command: 1,
    address: { type: "domain", host: "example.com", port: 443 },
    length: request.length,
  });
});

Deno.test("parseRequest() maps an unknown address type to REP 0x08", () => {
  const error = assertThrows(() => parseRequest(Uint8Array.of(5, 1, 0, 9, 1, 2, 3, 4, 0, 80)));
  assertOk(error instanceof SocksRequestError);
  assertEquals(error.reply, Reply.addressTypeNotSupported);
  const zeroName = assertThrows(() => parseRequest(Uint8Array.of(5, 1, 0, 3, 0, 0, 80)));
  assertOk(zeroName instanceof ProtocolError);
});

Deno.test("encodeReply() writes VER REP RSV and the bound address", () => {
  assertEquals(toHex(encodeReply(Reply.commandNotSupported)), "05070001000000000000");
  assertEquals(
    toHex(encodeReply(Reply.succeeded, { type: "ipv4", host: "127.0.0.1", port: 1080 })),
    "050000017f0000010438",
  );
});
