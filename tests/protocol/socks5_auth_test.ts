import { ProtocolError } from "../../protocol/errors.ts";
import { METHOD_NO_AUTH, METHOD_NONE_ACCEPTABLE } from "../../protocol/socks5.ts";
import {
  chooseMethod,
  credentialsMatch,
  encodeUserPassReply,
  METHOD_USER_PASS,
  parseUserPassRequest,
} from "../../protocol/socks5_auth.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { toHex, utf8 } from "../_vectors.ts";

function request(user: Uint8Array, password: Uint8Array): Uint8Array {
  return Uint8Array.of(1, user.length, ...user, password.length, ...password);
}

Deno.test("parseUserPassRequest() returns need-more on every strict prefix", () => {
  const bytes = request(utf8("alice"), utf8("s3cret"));
  for (let n = 0; n < bytes.length; n++) {
    assertEquals(parseUserPassRequest(bytes.subarray(0, n)), undefined);
  }
  assertEquals(parseUserPassRequest(bytes), { user: "alice", password: "s3cret", length: 14 });
});

Deno.test("parseUserPassRequest() reads 255-byte fields and stops at its own length", () => {
  const long = "u".repeat(255);
  const bytes = Uint8Array.of(...request(utf8(long), utf8("p".repeat(255))), 0x16, 0x03);
  const parsed = parseUserPassRequest(bytes);
  assertEquals(parsed?.user, long);
  assertEquals(parsed?.password, "p".repeat(255));
  assertEquals(parsed?.length, bytes.length - 2);
});

Deno.test("parseUserPassRequest() keeps UTF-8 and accepts empty fields", () => {
  assertEquals(parseUserPassRequest(request(utf8("zoë"), utf8("пароль")))?.user, "zoë");
  assertEquals(parseUserPassRequest(Uint8Array.of(1, 0, 0)), {
    user: "",
    password: "",
    length: 3,
  });
});

Deno.test("parseUserPassRequest() refuses the SOCKS5 version byte and non-UTF-8 names", () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.of(5, 1, 0x61, 1, 0x62), "ERR_CLIENT_PROTOCOL"],
    [Uint8Array.of(0), "ERR_CLIENT_PROTOCOL"],
    [request(Uint8Array.of(0xff), utf8("x")), "ERR_AUTH"],
    [request(utf8("x"), Uint8Array.of(0xc3)), "ERR_AUTH"],
  ];
  for (const [bytes, code] of cases) {
    const error = assertThrows(() => parseUserPassRequest(bytes));
    assertOk(error instanceof ProtocolError);
    assertEquals(error.code, code);
  }
});

Deno.test("encodeUserPassReply() writes VER 01 and STATUS", () => {
  assertEquals(toHex(encodeUserPassReply(true)), "0100");
  assertEquals(toHex(encodeUserPassReply(false)), "01ff");
});

Deno.test("chooseMethod() prefers no-auth without users and demands 0x02 with users", async (t) => {
  const cases: [number[], boolean, number][] = [
    [[0x00], false, METHOD_NO_AUTH],
    [[0x02, 0x00], false, METHOD_NO_AUTH], // ss-rust would pick 0x02 here and then fail
    [[0x02], false, METHOD_NONE_ACCEPTABLE],
    [[0x01, 0x80], false, METHOD_NONE_ACCEPTABLE],
    [[0x00, 0x02], true, METHOD_USER_PASS],
    [[0x00], true, METHOD_NONE_ACCEPTABLE],
    [[0x01], true, METHOD_NONE_ACCEPTABLE],
  ];
  for (const [offered, users, expected] of cases) {
    await t.step(`${offered} users=${users} -> ${expected}`, () => {
      assertEquals(chooseMethod(Uint8Array.from(offered), users), expected);
    });
  }
});

Deno.test("credentialsMatch() needs the exact user and password", () => {
  const users = new Map([["alice", "s3cret"], ["bob", ""], ["zoë", "пароль"]]);
  assertOk(credentialsMatch(users, "alice", "s3cret"));
  assertOk(credentialsMatch(users, "bob", ""));
  assertOk(credentialsMatch(users, "zoë", "пароль"));
  for (
    const [user, password] of [
      ["alice", "s3cre"],
      ["alice", "s3cret "],
      ["alice", "S3cret"],
      ["alice", ""],
      ["Alice", "s3cret"],
      ["carol", "s3cret"],
      ["carol", ""],
      ["bob", "x"],
    ]
  ) {
    assertEquals(credentialsMatch(users, user!, password!), false, `${user}:${password}`);
  }
  assertEquals(credentialsMatch(new Map(), "", ""), false);
});
