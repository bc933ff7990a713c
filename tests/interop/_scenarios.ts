/**
 * The two interop paths every peer gets, whoever it is:
 *
 * ```
 *   curl / SOCKS5 UDP ─▶ peer's local ══▶ ssdeno server ─▶ HTTP fixture / UDP echo
 *   curl / SOCKS5 UDP ─▶ ssdeno local ══▶ peer's server ─▶ HTTP fixture / UDP echo
 * ```
 *
 * Each carries the traffic of `_checks.ts` (download, echo and fetch by name with SHA-256
 * equality; datagrams of each size echoed byte for byte) and asserts the ssdeno side's counts.
 * @module
 */
import assert from "node:assert/strict";
import type { LocalConfig, ServerConfig } from "../../config/types.ts";
import { findMethod } from "../../crypto/methods.ts";
import { startLocal } from "../../local.ts";
import { startServer } from "../../server.ts";
import { curlViaSocks, startHttpFixture, waitUntil } from "../_fixtures.ts";
import { localConfig, serverConfig } from "../e2e/_harness.ts";
import { randomPsk, UdpEcho } from "../e2e/_udp_harness.ts";
import {
  assertAllOk,
  checkSocksUdp,
  checkTransfers,
  endedSessions,
  localTarget,
  nonZeroStatuses,
  SESSIONS_PER_CHECK,
} from "./_checks.ts";
import type { PeerProcess } from "./_peers.ts";

/** The AEAD-2017 and 2022 methods every full implementation has. */
export const SIX_METHODS = [
  "aes-128-gcm",
  "aes-256-gcm",
  "chacha20-ietf-poly1305",
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;
/** The 2022 methods with identity headers, which SIP023 multi-user needs. */
export const MULTI_USER_METHODS = ["2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"] as const;

/** Datagram sizes for peers that, like ssdeno, take datagrams far larger than libev's 2.8 KB. */
export const UDP_SIZES = [1, 64, 512, 1400, 4096, 16_384];
/** UDP on, with a small NAT table. */
export const WITH_UDP = { mode: "tcp_and_udp", udpMaxAssociations: 256 } as const;

/** A password of the method's kind: any string for AEAD-2017, a PSK of its key size for 2022. */
export function passwordFor(method: string): string {
  const info = findMethod(method)!;
  return info.family === "aead2022" ? randomPsk(info.keySize) : "interop-test-password";
}

/** Two users of a multi-user 2022 server, its identity PSK, and a key no user has. */
export function multiUser(method: string) {
  const keySize = findMethod(method)!.keySize;
  const users = ["alice", "bob"].map((name) => ({ name, password: randomPsk(keySize) }));
  return { ipsk: randomPsk(keySize), users, bob: users[1]!, stranger: randomPsk(keySize) };
}

/**
 * The peer's local (started by `startPeerLocal` against the given server port) → an ssdeno
 * server made from `server`: TCP and, with `udpSizes`, UDP. Returns the server's counters.
 */
export async function peerLocalToSsdeno(
  method: string,
  server: Partial<ServerConfig>,
  startPeerLocal: (serverPort: number) => Promise<PeerProcess>,
  udpSizes: readonly number[] = UDP_SIZES,
) {
  await using http = startHttpFixture();
  const echo = new UdpEcho();
  const service = await startServer(serverConfig(method, { ...WITH_UDP, ...server }), {
    graceMs: 0,
  });
  try {
    await using local = await startPeerLocal(service.addr.port);
    await checkTransfers(local.port, localTarget(http), local.output);
    await assertAllOk(service, SESSIONS_PER_CHECK, "ssdeno server");
    if (udpSizes.length > 0) {
      await checkSocksUdp(local.port, echo.port, udpSizes, `${local.binary} → ssdeno ${method}`);
      const udp = service.udpStats!;
      assert.equal(udp.statuses.OK, udpSizes.length, JSON.stringify(udp.statuses));
      await waitUntil(() => udp.repliesRelayed >= udpSizes.length);
    }
    return { stats: service.stats, udpStats: service.udpStats };
  } finally {
    await service.close();
    await echo.close();
  }
}

/** An ssdeno local made from `local` → the peer's server `peer`: TCP and UDP. */
export async function ssdenoToPeerServer(
  method: string,
  local: Partial<LocalConfig>,
  peer: PeerProcess,
  udpSizes: readonly number[] = UDP_SIZES,
) {
  await using http = startHttpFixture();
  const echo = new UdpEcho();
  const service = await startLocal(localConfig(method, peer.port, { ...WITH_UDP, ...local }), {
    graceMs: 0,
  });
  try {
    await checkTransfers(service.addr.port, localTarget(http), peer.output);
    await assertAllOk(service, SESSIONS_PER_CHECK, "ssdeno local");
    if (udpSizes.length > 0) {
      const what = `ssdeno → ${peer.binary} ${method}`;
      await checkSocksUdp(service.addr.port, echo.port, udpSizes, what);
      assert.equal(service.udpStats?.repliesDropped, 0);
    }
  } finally {
    await service.close();
    await echo.close();
  }
}

/** The peer's local with a key the multi-user ssdeno server does not know: `ERR_CIPHER`. */
export async function ssdenoRefusesUnknownUser(
  method: string,
  server: Partial<ServerConfig>,
  startPeerLocal: (serverPort: number) => Promise<PeerProcess>,
) {
  await using http = startHttpFixture();
  const service = await startServer(serverConfig(method, { ...server, handshakeTimeout: 1 }), {
    graceMs: 0,
  });
  try {
    await using local = await startPeerLocal(service.addr.port);
    const result = await curlViaSocks(local.port, http.url("/blob?size=1024"), {
      maxTimeSeconds: 10,
    });
    assert.notEqual(result.code, 0, "curl succeeded as an unknown user");
    assert.equal(result.stdout.length, 0);
    await waitUntil(() => endedSessions(service) >= 1);
    assert.deepEqual(nonZeroStatuses(service), { ERR_CIPHER: 1 });
    assert.equal(http.requests.size, 0, "requests reaching the target");
  } finally {
    await service.close();
  }
}

/** An ssdeno local with `password` (a key the peer's server does not know): nothing gets through. */
export async function peerRefusesUnknownUser(method: string, password: string, peer: PeerProcess) {
  await using http = startHttpFixture();
  const service = await startLocal(localConfig(method, peer.port, { password }), { graceMs: 0 });
  try {
    const result = await curlViaSocks(service.addr.port, http.url("/blob?size=1024"), {
      maxTimeSeconds: 10,
    });
    assert.notEqual(result.code, 0, `${peer.binary} served an unknown user\n${peer.output()}`);
    assert.equal(result.stdout.length, 0);
    assert.equal(http.requests.size, 0, "requests reaching the target");
  } finally {
    await service.close();
  }
}
