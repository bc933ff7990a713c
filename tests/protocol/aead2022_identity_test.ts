import assert from "node:assert/strict";
import { InvalidPskError, pskIdentityHash } from "../../crypto/kdf2022.ts";
import {
  clientKeys2022,
  createUserTable,
  EIH_SIZE,
  lookupUser,
  openTcpIdentityHeader,
  openUdpIdentityHeader,
  requireUser,
  sealTcpIdentityHeaders,
  sealUdpIdentityHeaders,
  serverKeys2022,
} from "../../protocol/aead2022_identity.ts";
import {
  assertProtocolError,
  base64,
  loadVectors,
  method,
  randomKey,
  toBase64,
} from "../crypto/_vectors2022.ts";

const { vectors } = await loadVectors("sip022_sip023.json");
// deno-lint-ignore no-explicit-any
const eihVector = vectors.find((v: any) => v.name.startsWith("TCP extensible identity header"));

Deno.test("sealTcpIdentityHeaders() matches the published SIP023 TCP EIH", () => {
  // The source pairs 16-byte PSKs with a 32-byte salt and AES-256 (see the vector's caveat),
  // so the identity subkey is 32 bytes: pass the key size explicitly.
  const keys = clientKeys2022(method("2022-blake3-aes-128-gcm"), eihVector.password_string);
  const salt = base64(eihVector.salt_base64);
  const eih = sealTcpIdentityHeaders(keys, salt, 32);
  assert.equal(toBase64(eih), eihVector.eih_base64);
  const hash = openTcpIdentityHeader(base64(eihVector.ipsk_base64), salt, eih, 32);
  assert.deepEqual(hash, pskIdentityHash(base64(eihVector.upsk_base64)));
});

Deno.test("TCP EIHs chain through every iPSK and open with each one", async (t) => {
  for (const name of ["2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"]) {
    await t.step(name, () => {
      const info = method(name);
      const chain = [randomKey(info), randomKey(info), randomKey(info)];
      const keys = clientKeys2022(info, chain.map(toBase64).join(":"));
      const salt = randomKey(info);
      const eihs = sealTcpIdentityHeaders(keys, salt);
      assert.equal(eihs.length, 2 * EIH_SIZE);
      for (let i = 0; i < 2; i++) {
        const eih = eihs.subarray(i * EIH_SIZE, (i + 1) * EIH_SIZE);
        const hash = openTcpIdentityHeader(chain[i]!, salt, eih, info.keySize);
        assert.deepEqual(hash, pskIdentityHash(chain[i + 1]!));
      }
      const single = clientKeys2022(info, toBase64(chain[0]!));
      assert.equal(sealTcpIdentityHeaders(single, salt).length, 0);
    });
  }
});

Deno.test("UDP EIHs XOR the identity hash with the separate header", () => {
  const info = method("2022-blake3-aes-256-gcm");
  const [ipsk, upsk] = [randomKey(info), randomKey(info)];
  const keys = clientKeys2022(info, `${toBase64(ipsk)}:${toBase64(upsk)}`);
  const header = crypto.getRandomValues(new Uint8Array(16));
  const eih = sealUdpIdentityHeaders(keys, header);
  assert.equal(eih.length, 16);
  assert.deepEqual(openUdpIdentityHeader(ipsk, eih, header), pskIdentityHash(upsk));
  const other = header.slice();
  other[15]! ^= 1;
  assert.notDeepEqual(openUdpIdentityHeader(ipsk, eih, other), pskIdentityHash(upsk));
});

Deno.test("createUserTable() finds users by identity hash and refuses duplicates", () => {
  const info = method("2022-blake3-aes-128-gcm");
  const users = ["alice", "bob", "carol"].map((name) => ({ name, psk: randomKey(info) }));
  const table = createUserTable(users);
  for (const user of users) {
    assert.equal(lookupUser(table, pskIdentityHash(user.psk)), user);
    assert.equal(requireUser(table, pskIdentityHash(user.psk)), user);
  }
  assert.equal(lookupUser(table, new Uint8Array(16)), undefined);
  assertProtocolError(() => requireUser(table, new Uint8Array(16)), "ERR_CIPHER", "Unknown user");
  assert.throws(
    () => createUserTable([users[0]!, { name: "mallory", psk: users[0]!.psk }]),
    { message: 'Users "alice" and "mallory" have the same key' },
  );
  assert.throws(
    () => createUserTable([users[0]!, { name: "alice", psk: randomKey(info) }]),
    { message: 'Duplicate user name "alice"' },
  );
});

Deno.test("serverKeys2022() parses the server PSK and users, naming a bad user key", () => {
  const info = method("2022-blake3-aes-256-gcm");
  const server = toBase64(randomKey(info));
  const single = serverKeys2022(info, server);
  assert.equal(single.users, undefined);
  const multi = serverKeys2022(info, server, [
    { name: "alice", password: toBase64(randomKey(info)) },
    { name: "bob", password: toBase64(randomKey(info)) },
  ]);
  assert.equal(multi.users?.size, 2);
  assert.throws(
    () => serverKeys2022(info, server, [{ name: "bob", password: toBase64(new Uint8Array(16)) }]),
    {
      name: "InvalidPskError",
      message:
        'Invalid key of user "bob" for 2022-blake3-aes-256-gcm: expected 32 bytes of base64, got 16',
    },
  );
  const chacha = method("2022-blake3-chacha20-poly1305");
  assert.throws(
    () => serverKeys2022(chacha, server, [{ name: "a", password: server }]),
    InvalidPskError,
  );
  assert.throws(() => serverKeys2022(method("aes-256-gcm"), server), RangeError);
  assert.throws(() => clientKeys2022(method("aes-256-gcm"), server), RangeError);
});
