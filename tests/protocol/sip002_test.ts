import assert from "node:assert/strict";
import { assertConfigError } from "../config/_assert.ts";
import { decodeSip002, encodeSip002, type Sip002Config } from "../../protocol/sip002.ts";

interface Vectors {
  sip002_examples: { uri: string }[];
  round_trip_with_expected_fields: {
    uri: string;
    expected: {
      remarks: string;
      host: string;
      port: number;
      password: string;
      method: string;
      plugin: string | null;
      plugin_opts: string | null;
    };
  }[];
  legacy_whole_uri_base64: { plain_uri: string; encoded_uri: string; with_tag: string }[];
  negative: { uri: string; expect: string }[];
  eih_password_example: { method: string; password: string };
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(
    new URL("../testdata/sip002_uris.json", import.meta.url),
  ),
);

/** Uppercases percent-escapes and drops the optional "/" before a lone fragment. */
function canonical(uri: string): string {
  return uri.replace(/%[0-9a-f]{2}/gi, (escape) => escape.toUpperCase()).replace(/\/#/, "#");
}

Deno.test("decodeSip002() decodes every published SIP002 example to fields that re-encode", async (t) => {
  for (const { uri } of vectors.sip002_examples) {
    await t.step(uri, () => {
      const config = decodeSip002(uri);
      assert.ok(config.host.length > 0);
      assert.ok(Number.isInteger(config.port) && config.port > 0 && config.port < 65536);
      assert.deepStrictEqual(decodeSip002(encodeSip002(config)), config);
    });
  }
});

Deno.test("decodeSip002() reads the fields of the SIP002 examples exactly", () => {
  const [dummy, example1, example2, example3, example3Plugin] = vectors.sip002_examples;
  assert.deepStrictEqual(decodeSip002(dummy!.uri), {
    method: "bf-cfb",
    password: "test",
    host: "192.168.100.1",
    port: 8888,
    plugin: "url-encoded-plugin-argument-value",
    tag: "Dummy+profile+name",
  });
  assert.deepStrictEqual(decodeSip002(example1!.uri), {
    method: "aes-128-gcm",
    password: "test",
    host: "192.168.100.1",
    port: 8888,
    tag: "Example1",
  });
  assert.deepStrictEqual(decodeSip002(example2!.uri), {
    method: "rc4-md5",
    password: "passwd",
    host: "192.168.100.1",
    port: 8888,
    plugin: "obfs-local",
    pluginOpts: "obfs=http",
    tag: "Example2",
  });
  const psk = "YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=";
  assert.deepStrictEqual(decodeSip002(example3!.uri), {
    method: "2022-blake3-aes-256-gcm",
    password: psk,
    host: "192.168.100.1",
    port: 8888,
    tag: "Example3",
  });
  assert.deepStrictEqual(decodeSip002(example3Plugin!.uri).plugin, "v2ray-plugin");
  assert.deepStrictEqual(decodeSip002(example3Plugin!.uri).pluginOpts, "server");
});

Deno.test("decodeSip002() gives the padded whitepaper forms the same fields as the unpadded ones", () => {
  const uris = vectors.sip002_examples.map((example) => example.uri);
  const padded = uris.filter((uri) => /^ss:\/\/[A-Za-z0-9]+=+@/.test(uri));
  assert.deepStrictEqual(padded.length, 2);
  for (const uri of padded) {
    assert.deepStrictEqual(decodeSip002(uri), decodeSip002(uri.replace(/=+@/, "@")));
  }
});

Deno.test("decodeSip002() reads the 2022 URL examples with IPv6 hosts in brackets", () => {
  const [name128, name256v6] = vectors.sip002_examples.slice(-2);
  assert.deepStrictEqual(decodeSip002(name128!.uri), {
    method: "2022-blake3-aes-128-gcm",
    password: "5mOQSa20Kt6ay2LXruBoHQ==",
    host: "example.com",
    port: 443,
    tag: "name",
  });
  assert.deepStrictEqual(decodeSip002(name256v6!.uri), {
    method: "2022-blake3-aes-256-gcm",
    password: "t7XRzLCvgsH4r4r669cyqPnVNFG2c/HC5Tt+MjINJB0=",
    host: "2001:db8:1f74:3c86:aef9:a75:5d2a:425e",
    port: 20220,
    tag: "name",
  });
});

Deno.test("encodeSip002() writes the 2022 examples exactly as the spec shows them", () => {
  for (const uri of vectors.sip002_examples.filter((u) => u.uri.includes("2022-"))) {
    assert.deepStrictEqual(canonical(encodeSip002(decodeSip002(uri.uri))), canonical(uri.uri));
  }
});

Deno.test("decodeSip002() matches the expected fields of the round-trip vectors", async (t) => {
  for (const { uri, expected } of vectors.round_trip_with_expected_fields) {
    await t.step(uri, () => {
      const want: Sip002Config = {
        method: expected.method,
        password: expected.password,
        host: expected.host,
        port: expected.port,
        tag: expected.remarks,
      };
      if (expected.plugin !== null) want.plugin = expected.plugin;
      if (expected.plugin_opts !== null) want.pluginOpts = expected.plugin_opts;
      assert.deepStrictEqual(decodeSip002(uri), want);
      assert.deepStrictEqual(canonical(encodeSip002(want)), canonical(uri));
    });
  }
});

Deno.test("decodeSip002() reads the legacy whole-URI base64 form with and without a tag", () => {
  for (const legacy of vectors.legacy_whole_uri_base64) {
    const plain = legacy.plain_uri.slice("ss://".length);
    const at = plain.lastIndexOf("@");
    const colon = plain.indexOf(":");
    const want = {
      method: plain.slice(0, colon),
      password: plain.slice(colon + 1, at),
      host: "192.168.100.1",
      port: 8888,
    };
    assert.deepStrictEqual(want.password, "test/!@#:");
    assert.deepStrictEqual(decodeSip002(legacy.encoded_uri), want);
    assert.deepStrictEqual(decodeSip002(legacy.with_tag), { ...want, tag: "example-server" });
  }
});

Deno.test("decodeSip002() rejects the negative vectors with a ConfigError naming the method", async () => {
  assert.equal(vectors.negative.length, 1);
  for (const { uri } of vectors.negative) {
    await assertConfigError(() => decodeSip002(uri), `"foo"`);
  }
});

Deno.test("encodeSip002() round-trips a 2022 identity-header password chain", () => {
  const { method, password } = vectors.eih_password_example;
  const config = { method, password, host: "example.com", port: 8388 };
  const uri = encodeSip002(config);
  assert.deepStrictEqual(uri.includes(password), false);
  assert.deepStrictEqual(uri.startsWith(`ss://${method}:`), true);
  assert.deepStrictEqual(uri.includes("%3A"), true);
  assert.deepStrictEqual(decodeSip002(uri), config);
});

Deno.test("decodeSip002() accepts every spelling of the same user info", () => {
  const want = { method: "aes-256-gcm", password: "p>?~w", host: "h.example", port: 8388 };
  const standard = btoa(`${want.method}:${want.password}`);
  assert.deepStrictEqual(standard.includes("+") || standard.includes("/"), true);
  assert.deepStrictEqual(standard.endsWith("="), true);
  const url = standard.replaceAll("+", "-").replaceAll("/", "_");
  const spellings = [
    standard,
    standard.replace(/=+$/, ""),
    url,
    url.replace(/=+$/, ""),
    url.replaceAll("=", "%3D"),
    `${want.method}:${encodeURIComponent(want.password)}`,
  ];
  for (const userinfo of spellings) {
    assert.deepStrictEqual(decodeSip002(`ss://${userinfo}@h.example:8388`), want, userinfo);
  }
});

Deno.test("decodeSip002() defaults a missing port to 8388 and ignores unknown query keys", () => {
  assert.deepStrictEqual(decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@example.com"), {
    method: "aes-128-gcm",
    password: "test",
    host: "example.com",
    port: 8388,
  });
  assert.deepStrictEqual(
    decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@[::1]/?x=1&plugin=p%3Bk%3Dv&y#t"),
    {
      method: "aes-128-gcm",
      password: "test",
      host: "::1",
      port: 8388,
      plugin: "p",
      pluginOpts: "k=v",
      tag: "t",
    },
  );
});

Deno.test("decodeSip002() throws ConfigError for malformed URIs", async (t) => {
  const cases: [string, string, string][] = [
    ["wrong scheme", "http://YWVzLTEyOC1nY206dGVzdA@h:1", `"ss://"`],
    ["port out of range", "ss://YWVzLTEyOC1nY206dGVzdA@h:65536", `"65536"`],
    ["port zero", "ss://YWVzLTEyOC1nY206dGVzdA@h:0", `"0"`],
    ["port not a number", "ss://YWVzLTEyOC1nY206dGVzdA@h:80a", `"80a"`],
    ["IPv6 without brackets", "ss://YWVzLTEyOC1nY206dGVzdA@::1:80", "brackets"],
    ["unclosed bracket", "ss://YWVzLTEyOC1nY206dGVzdA@[::1:80", "IPv6"],
    ["empty host", "ss://YWVzLTEyOC1nY206dGVzdA@:80", "host"],
    ["a path after the port", "ss://YWVzLTEyOC1nY206dGVzdA@h:80/x", `"/x"`],
    ["user info not base64", "ss://not*base64@h:80", "base64"],
    ["base64 without a colon", `ss://${btoa("aes-128-gcm")}@h:80`, "method:password"],
    ["legacy form without @", `ss://${btoa("aes-128-gcm:pw")}`, "host:port"],
    ["bad percent-encoding", "ss://aes-128-gcm:%zz@h:80", "percent"],
    ["unknown method in clear", "ss://aes-257-gcm:pw@h:80", `"aes-257-gcm"`],
    ["invalid UTF-8", `ss://${btoa("aes-128-gcm:\xff")}@h:80`, "UTF-8"],
  ];
  for (const [name, uri, fragment] of cases) {
    await t.step(name, async () => {
      await assertConfigError(() => decodeSip002(uri), fragment);
    });
  }
});

Deno.test("decodeSip002() never puts the password into its error messages", async () => {
  const error = await assertConfigError(() => decodeSip002("ss://aes-128-gcm:hunter2@h:99999"));
  assert.equal(error.message.includes("hunter2"), false);
});

Deno.test("encodeSip002() output decodes back to the same fields", async (t) => {
  const configs: Sip002Config[] = [
    { method: "chacha20-ietf-poly1305", password: "a:b@c%d+e/f=g #h", host: "1.2.3.4", port: 1 },
    { method: "aes-128-gcm", password: "pw", host: "2001:db8::1", port: 65535, tag: "家 / #1" },
    { method: "none", password: "", host: "localhost", port: 8388 },
    {
      method: "2022-blake3-aes-128-gcm",
      password: "5mOQSa20Kt6ay2LXruBoHQ==",
      host: "example.com",
      port: 443,
      plugin: "obfs-local",
      pluginOpts: "obfs=http;obfs-host=a\\;b",
      tag: "x+y",
    },
    { method: "aes-256-gcm", password: "pw", host: "h", port: 80, plugin: "v2ray-plugin" },
  ];
  for (const config of configs) {
    await t.step(`${config.method} ${config.host}`, () => {
      const uri = encodeSip002(config);
      assert.deepStrictEqual(decodeSip002(uri), config);
    });
  }
});

Deno.test("encodeSip002() writes base64url without padding for AEAD methods", () => {
  const uri = encodeSip002({ method: "aes-256-gcm", password: "p>?~w", host: "h", port: 80 });
  const userinfo = uri.slice("ss://".length, uri.indexOf("@"));
  assert.deepStrictEqual(/^[A-Za-z0-9_-]+$/.test(userinfo), true);
  assert.deepStrictEqual(/[_-]/.test(userinfo), true);
  assert.deepStrictEqual(uri, `ss://${userinfo}@h:80`);
});

Deno.test("encodeSip002() rejects fields a URI cannot carry", async () => {
  const base = { method: "aes-128-gcm", password: "pw", host: "h", port: 80 };
  await assertConfigError(() => encodeSip002({ ...base, port: 0 }), `"0"`);
  await assertConfigError(() => encodeSip002({ ...base, port: 1.5 }), `"1.5"`);
  await assertConfigError(() => encodeSip002({ ...base, host: "" }), "host");
  await assertConfigError(() => encodeSip002({ ...base, method: "a:b" }), `"a:b"`);
});

const CLIENT_HELLO = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0xa8, 0x01, 0x01);
const POST = Uint8Array.of(0x50, 0x4f, 0x53, 0x54, 0x20);

Deno.test("decodeSip002() reads an Outline prefix from the query and ignores outline=1", () => {
  assert.deepStrictEqual(
    decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@h:443/?outline=1&prefix=%16%03%01%00%C2%A8%01%01"),
    { method: "aes-128-gcm", password: "test", host: "h", port: 443, prefix: CLIENT_HELLO },
  );
  const withPlugin = decodeSip002(
    "ss://YWVzLTEyOC1nY206dGVzdA@h:80/?plugin=obfs-local%3Bobfs%3Dhttp&prefix=POST+#t",
  );
  assert.deepStrictEqual(withPlugin.prefix, POST);
  assert.deepStrictEqual(withPlugin.pluginOpts, "obfs=http");
  assert.deepStrictEqual(withPlugin.tag, "t");
});

Deno.test("decodeSip002() treats an empty prefix as no prefix", () => {
  const config = decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@h:80/?prefix=&x=1");
  assert.deepStrictEqual("prefix" in config, false);
});

Deno.test("decodeSip002() rejects a prefix character above U+00FF with a ConfigError", async () => {
  await assertConfigError(
    () => decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@h:80/?prefix=%DC"),
    "ss:// URI prefix",
    "U+FFFD",
  );
  await assertConfigError(
    () => decodeSip002("ss://YWVzLTEyOC1nY206dGVzdA@h:80/?prefix=%C4%80"),
    "U+0100",
  );
});

Deno.test("decodeSip002() reads a prefix in the legacy form, inside or after the base64", async (t) => {
  const want = { method: "aes-128-gcm", password: "test/!@#:?", host: "h.example", port: 80 };
  const plain = `${want.method}:${want.password}@${want.host}:${want.port}`;
  const forms: [string, string][] = [
    ["query inside, after /", `ss://${btoa(`${plain}/?prefix=POST%20`)}`],
    ["query inside, right after the port", `ss://${btoa(`${plain}?prefix=POST%20`)}#tag`],
    ["query after the base64", `ss://${btoa(plain)}?prefix=POST%20`],
    ["query after the base64 and /", `ss://${btoa(plain)}/?prefix=POST%20#tag`],
  ];
  for (const [name, uri] of forms) {
    await t.step(name, () => {
      const config = decodeSip002(uri);
      const tag = uri.endsWith("#tag") ? { tag: "tag" } : {};
      assert.deepStrictEqual(config, { ...want, prefix: POST, ...tag });
    });
  }
  await t.step("plugin and prefix inside the base64, no port", () => {
    const uri = `ss://${btoa("aes-128-gcm:pw@h/?plugin=obfs-local%3Bobfs%3Dtls&prefix=%16%03")}`;
    assert.deepStrictEqual(decodeSip002(uri), {
      method: "aes-128-gcm",
      password: "pw",
      host: "h",
      port: 8388,
      plugin: "obfs-local",
      pluginOpts: "obfs=tls",
      prefix: Uint8Array.of(0x16, 0x03),
    });
  });
  await t.step("the query inside the base64 wins over the one after it", () => {
    const uri = `ss://${btoa("aes-128-gcm:pw@h:1?prefix=POST%20")}?prefix=GET%20`;
    assert.deepStrictEqual(decodeSip002(uri).prefix, POST);
  });
  await t.step("a path inside the base64 is still an error", async () => {
    await assertConfigError(() => decodeSip002(`ss://${btoa("aes-128-gcm:pw@h:1/x")}`), `"/x"`);
  });
});

Deno.test("encodeSip002() writes prefix= after plugin= and leaves URIs without one unchanged", () => {
  const base = { method: "aes-128-gcm", password: "test", host: "h", port: 80 };
  assert.deepStrictEqual(encodeSip002(base), "ss://YWVzLTEyOC1nY206dGVzdA@h:80");
  assert.deepStrictEqual(
    encodeSip002({ ...base, prefix: new Uint8Array() }),
    "ss://YWVzLTEyOC1nY206dGVzdA@h:80",
  );
  assert.deepStrictEqual(
    encodeSip002({ ...base, prefix: CLIENT_HELLO, tag: "t" }),
    "ss://YWVzLTEyOC1nY206dGVzdA@h:80/?prefix=%16%03%01%00%C2%A8%01%01#t",
  );
  assert.deepStrictEqual(
    encodeSip002({ ...base, plugin: "obfs-local", pluginOpts: "obfs=http", prefix: POST }),
    "ss://YWVzLTEyOC1nY206dGVzdA@h:80/?plugin=obfs-local%3Bobfs%3Dhttp&prefix=POST%20",
  );
});

Deno.test("encodeSip002() round-trips every prefix byte, with and without a plugin", async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const configs: Sip002Config[] = [
    { method: "aes-256-gcm", password: "pw", host: "h", port: 80, prefix: all },
    { method: "chacha20-ietf-poly1305", password: "pw", host: "::1", port: 53, prefix: POST },
    {
      method: "2022-blake3-aes-128-gcm",
      password: "5mOQSa20Kt6ay2LXruBoHQ==",
      host: "example.com",
      port: 443,
      plugin: "v2ray-plugin",
      pluginOpts: "server",
      prefix: Uint8Array.of(0x2b, 0x26, 0x3d, 0x23, 0x25, 0x3f),
      tag: "x",
    },
  ];
  for (const config of configs) {
    await t.step(`${config.method} ${config.host}`, () => {
      assert.deepStrictEqual(decodeSip002(encodeSip002(config)), config);
    });
  }
});
