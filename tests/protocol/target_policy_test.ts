import { isForbiddenIp } from "../../protocol/target_policy.ts";
import { assertEquals } from "../_assert.ts";

Deno.test("isForbiddenIp() refuses loopback, private, link-local and unspecified addresses", () => {
  for (
    const ip of [
      "127.0.0.1",
      "127.255.0.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "0.0.0.0",
      "100.64.0.1",
      "224.0.0.1",
      "255.255.255.255",
      "::",
      "::1",
      "fe80::1",
      "fc00::1",
      "fd12:3456::1",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
      "64:ff9b::a00:1",
      "ff02::1",
    ]
  ) {
    assertEquals(isForbiddenIp(ip), true, ip);
  }
});

Deno.test("isForbiddenIp() allows public unicast addresses", () => {
  for (
    const ip of [
      "1.1.1.1",
      "8.8.8.8",
      "172.32.0.1",
      "100.128.0.1",
      "2606:4700::1111",
      "::ffff:8.8.8.8",
    ]
  ) {
    assertEquals(isForbiddenIp(ip), false, ip);
  }
});
