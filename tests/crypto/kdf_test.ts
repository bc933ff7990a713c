import { assertEquals } from "../_assert.ts";
import { deriveSessionSubkey, evpBytesToKey, hkdfSha1 } from "../../crypto/kdf.ts";
import { hex, loadVectors, toHex, utf8 } from "../_vectors.ts";

Deno.test("evpBytesToKey() matches the published Shadowsocks keys", async (t) => {
  const { vectors } = await loadVectors("evp_bytes_to_key.json");
  // deno-lint-ignore no-explicit-any
  const unsalted = vectors.filter((v: any) => !v.not_used_by_shadowsocks && v.count !== 3);
  assertEquals(unsalted.length >= 4, true);
  for (const v of unsalted) {
    await t.step(`${v.password_utf8} (${v.key_len} bytes)`, () => {
      const expected = v.key_hex !== undefined
        ? hex(v.key_hex + (v.iv_hex ?? ""))
        : Uint8Array.from(atob(v.key_base64), (c) => c.charCodeAt(0));
      const length = v.iv_hex ? v.key_len + v.iv_len : v.key_len;
      assertEquals(toHex(evpBytesToKey(v.password_utf8, length)), toHex(expected));
    });
  }
});

Deno.test("evpBytesToKey() gives shorter keys as prefixes of longer ones", () => {
  const long = evpBytesToKey("123中1文da18测)试abc!#$@(", 32);
  for (let n = 16; n <= 32; n++) {
    assertEquals(toHex(evpBytesToKey("123中1文da18测)试abc!#$@(", n)), toHex(long.subarray(0, n)));
  }
});

Deno.test("hkdfSha1() matches RFC 5869 and ss-subkey known answers", async (t) => {
  const { vectors } = await loadVectors("hkdf_sha1.json");
  for (const v of vectors) {
    await t.step(v.name, () => {
      const ikm = v.ikm_hex !== undefined ? hex(v.ikm_hex) : utf8(v.ikm_utf8);
      const salt = v.salt_hex !== undefined ? hex(v.salt_hex) : utf8(v.salt_utf8);
      const info = v.info_hex !== undefined ? hex(v.info_hex) : utf8(v.info_utf8);
      assertEquals(toHex(hkdfSha1(ikm, salt, info, v.length)), v.okm_hex);
    });
  }
});

Deno.test("deriveSessionSubkey() is HKDF-SHA1 with info ss-subkey and the key's length", () => {
  const master = evpBytesToKey("password", 16);
  const salt = utf8("random-salt-0123");
  assertEquals(
    toHex(deriveSessionSubkey(master, salt)),
    toHex(hkdfSha1(master, salt, utf8("ss-subkey"), 16)),
  );
});
