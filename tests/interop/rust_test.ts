/**
 * Interop with shadowsocks-rust, the reference implementation of SIP022/SIP023: rust `sslocal` →
 * ssdeno server and ssdeno local → rust `ssserver` for all six methods, TCP and UDP; and 2022
 * multi-user both ways (a client with `iPSK:uPSK`, a server with `users`), an unknown user
 * refused. The paths and checks are in `_scenarios.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { peerTest } from "./_peers.ts";
import { startRustLocal, startRustServer } from "./_rust.ts";
import {
  MULTI_USER_METHODS,
  multiUser,
  passwordFor,
  peerLocalToSsdeno,
  peerRefusesUnknownUser,
  SIX_METHODS as METHODS,
  ssdenoRefusesUnknownUser,
  ssdenoToPeerServer,
  UDP_SIZES,
} from "./_scenarios.ts";

for (const method of METHODS) {
  peerTest({
    name: `rust sslocal carries TCP and UDP through the ssdeno server with ${method}`,
    peers: ["sslocal", "curl"],
    async fn() {
      const password = passwordFor(method);
      await peerLocalToSsdeno(
        method,
        { password },
        (port) => startRustLocal(port, { method, password }),
      );
    },
  });

  peerTest({
    name: `the ssdeno local carries TCP and UDP through rust ssserver with ${method}`,
    peers: ["ssserver", "curl"],
    async fn() {
      const password = passwordFor(method);
      await using server = await startRustServer({ method, password });
      await ssdenoToPeerServer(method, { password }, server);
    },
  });
}

for (const method of MULTI_USER_METHODS) {
  peerTest({
    name: `rust sslocal as one user (iPSK:uPSK) of a multi-user ssdeno server with ${method}`,
    peers: ["sslocal", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      const server = { password: ipsk, users };
      const { stats, udpStats } = await peerLocalToSsdeno(
        method,
        server,
        (port) => startRustLocal(port, { method, password: `${ipsk}:${bob.password}` }),
      );
      assert.equal(stats.users["bob"]?.sessions, 3);
      assert.equal(stats.users["alice"]?.sessions, 0);
      assert.equal(udpStats?.users["bob"]?.datagramsRelayed, UDP_SIZES.length);
      await ssdenoRefusesUnknownUser(
        method,
        server,
        (port) => startRustLocal(port, { method, password: `${ipsk}:${stranger}` }),
      );
    },
  });

  peerTest({
    name: `the ssdeno local as one user (iPSK:uPSK) of a multi-user rust ssserver with ${method}`,
    peers: ["ssserver", "curl"],
    async fn() {
      const { ipsk, users, bob, stranger } = multiUser(method);
      await using server = await startRustServer({ method, password: ipsk, users });
      await ssdenoToPeerServer(method, { password: `${ipsk}:${bob.password}` }, server);
      await peerRefusesUnknownUser(method, `${ipsk}:${stranger}`, server);
    },
  });
}
