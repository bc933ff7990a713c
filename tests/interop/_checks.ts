/**
 * The traffic every interop test carries, whoever the peer: through a SOCKS5 proxy (ours or a
 * peer's) a download checked by SHA-256, an upload echoed back byte for byte and a fetch by host
 * name; UDP datagrams of several sizes through SOCKS5 UDP ASSOCIATE or a tunnel, each echoed
 * back unchanged; and the session counts the ssdeno side must show afterwards.
 * @module
 */
import assert from "node:assert/strict";
import type { Address } from "../../protocol/address.ts";
import type { SessionStatus } from "../../protocol/errors.ts";
import type { RunningService } from "../../relay/service.ts";
import {
  curlViaSocks,
  deterministicBytes,
  type HttpFixture,
  randomBytes,
  sha256Hex,
  waitUntil,
} from "../_fixtures.ts";
import { datagramBytes, loopback, SocksUdpClient, UdpPeer } from "../e2e/_udp_harness.ts";

const DOWNLOAD_SIZE = 4 * 1024 * 1024;
const UPLOAD_SIZE = 1024 * 1024;
const BY_NAME_SIZE = 64 * 1024;
/** Sessions `checkTransfers` opens: download, echo, download by name. */
export const SESSIONS_PER_CHECK = 3;
/** Tries per datagram: UDP on loopback does not lose packets, but a peer may start slowly. */
const ATTEMPTS = 3;

/** Sum of every status counter: how many sessions have ended. */
export function endedSessions(service: RunningService): number {
  return Object.values(service.stats.statuses).reduce((sum, n) => sum + n, 0);
}

export function nonZeroStatuses(service: RunningService): Partial<Record<SessionStatus, number>> {
  return Object.fromEntries(
    Object.entries(service.stats.statuses).filter(([, n]) => n > 0),
  ) as Partial<Record<SessionStatus, number>>;
}

/** Waits until `expected` sessions have ended, then asserts that all of them ended `OK`. */
export async function assertAllOk(service: RunningService, expected: number, role: string) {
  await waitUntil(() => endedSessions(service) >= expected, {
    message: () =>
      `The ${role} ended ${endedSessions(service)} of ${expected} sessions within 5 s: ${
        JSON.stringify(nonZeroStatuses(service))
      }`,
  });
  assert.deepEqual(nonZeroStatuses(service), { OK: expected }, `${role} session statuses`);
}

/** Where `checkTransfers` sends its requests: an `HttpFixture`, here or on the test host. */
export interface TransferTarget {
  /** `http://HOST:PORT` + `path`, with `host` in place of the address when given. */
  url(path: string, host?: string): string;
  /** Requests the target answered, by path; absent when the target cannot tell. */
  readonly requests?: Map<string, number>;
  /** A host name that resolves to the target here and at the server, if there is one. */
  readonly name?: string;
}

/**
 * Through the SOCKS5 proxy on `socksPort`: a download by IP with SHA-256 check, a 1 MiB echo
 * with SHA-256 check, and (when the target has a name) a download addressed by name.
 * `peerOutput` is added to failure messages. Returns the number of sessions it opened.
 */
export async function checkTransfers(
  socksPort: number,
  target: TransferTarget,
  peerOutput: () => string,
): Promise<number> {
  const context = (what: string, stderr: string) => `${what}\n${stderr.trim()}\n${peerOutput()}`;

  const download = await curlViaSocks(socksPort, target.url(`/blob?size=${DOWNLOAD_SIZE}`));
  assert.equal(download.code, 0, context("Download failed", download.stderr));
  assert.equal(download.stdout.length, DOWNLOAD_SIZE, "downloaded length");
  assert.equal(
    await sha256Hex(download.stdout),
    await sha256Hex(deterministicBytes(DOWNLOAD_SIZE)),
    "SHA-256 of the downloaded body",
  );

  const upload = randomBytes(UPLOAD_SIZE);
  const echo = await curlViaSocks(socksPort, target.url("/echo"), { body: upload });
  assert.equal(echo.code, 0, context("Echo failed", echo.stderr));
  assert.equal(echo.stdout.length, UPLOAD_SIZE, "echoed length");
  assert.equal(await sha256Hex(echo.stdout), await sha256Hex(upload), "SHA-256 of the echo");
  if (target.name === undefined) return 2;

  const byName = await curlViaSocks(
    socksPort,
    target.url(`/blob?size=${BY_NAME_SIZE}`, target.name),
  );
  assert.equal(byName.code, 0, context("Download by host name failed", byName.stderr));
  assert.deepEqual(byName.stdout, deterministicBytes(BY_NAME_SIZE), "body fetched by host name");

  if (target.requests) {
    assert.equal(target.requests.get("/blob"), 2, "requests the HTTP fixture saw on /blob");
    assert.equal(target.requests.get("/echo"), 1, "requests the HTTP fixture saw on /echo");
  }
  return SESSIONS_PER_CHECK;
}

/** The local HTTP fixture as a transfer target, reachable as `localhost` too. */
export function localTarget(http: HttpFixture): TransferTarget {
  return { url: http.url, requests: http.requests, name: "localhost" };
}

/** Sends a datagram and returns the first reply, retrying a lost one a few times. */
async function exchange(
  send: () => Promise<void>,
  receive: (timeoutMs: number) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  let lastError: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    await send();
    try {
      return await receive(2000);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

export function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(at, -1, `${what}: first differing byte at ${at}`);
}

/** Plain datagrams of each size to a tunnel on `port`, each echoed back unchanged. */
export async function checkTunnel(port: number, sizes: readonly number[], what: string) {
  const peer = new UdpPeer();
  try {
    for (const [index, size] of sizes.entries()) {
      const payload = datagramBytes(size, index);
      const reply = await exchange(
        () => peer.send(payload, port),
        async (timeoutMs) => (await peer.next(timeoutMs)).data,
      );
      assertBytes(reply, payload, `${what}, ${size} bytes`);
    }
  } finally {
    await peer.close();
  }
}

/** SOCKS5 UDP datagrams of each size through the proxy on `port` to `echo`, echoed back. */
export async function checkSocksUdp(
  port: number,
  echo: number | Address,
  sizes: readonly number[],
  what: string,
) {
  const target = typeof echo === "number" ? loopback(echo) : echo;
  const client = await SocksUdpClient.open(port);
  try {
    for (const [index, size] of sizes.entries()) {
      const payload = datagramBytes(size, 100 + index);
      let from;
      const reply = await exchange(
        () => client.send(target, payload),
        async (timeoutMs) => {
          const next = await client.next(timeoutMs);
          from = next.address;
          return next.payload;
        },
      );
      assert.deepEqual(from, target, `${what}: reply source`);
      assertBytes(reply, payload, `${what}, ${size} bytes`);
    }
  } finally {
    await client.close();
  }
}
