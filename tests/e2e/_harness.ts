/**
 * In-process fixtures for end-to-end tests: an ssdeno server and local on port 0, a TCP echo
 * target, and a minimal SOCKS5 client. Everything binds 127.0.0.1 and is closed by `close()`.
 */
import { concatBytes } from "../../crypto/bytes.ts";
import { createHash } from "node:crypto";
import type { LocalConfig, ServerConfig } from "../../config/types.ts";
import { startLocal } from "../../local.ts";
import { type Address, encodeAddress } from "../../protocol/address.ts";
import type { SessionStatus } from "../../protocol/errors.ts";
import { readExact, writeAll } from "../../relay/io.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import { assertEquals } from "../_assert.ts";

export const AEAD_METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;

const COMMON = {
  timeout: 300,
  handshakeTimeout: 10,
  mode: "tcp_only",
  noDelay: true,
  udpTimeout: 300,
  udpMaxAssociations: 2048,
} as const;

export function serverConfig(method: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    ...COMMON,
    method,
    password: "e2e-password",
    address: "127.0.0.1",
    port: 0,
    allowPrivateTargets: true,
    ipv6First: false,
    ...overrides,
  };
}

export function localConfig(
  method: string,
  serverPort: number,
  overrides: Partial<LocalConfig> = {},
): LocalConfig {
  return {
    ...COMMON,
    method,
    password: "e2e-password",
    server: "127.0.0.1",
    serverPort,
    localAddress: "127.0.0.1",
    localPort: 0,
    ...overrides,
  };
}

export interface Chain {
  server: RunningService;
  local: RunningService;
  close(): Promise<void>;
}

/** Starts server and local for `method`, wired to each other. */
export async function startChain(
  method: string,
  overrides: { server?: Partial<ServerConfig>; local?: Partial<LocalConfig> } = {},
): Promise<Chain> {
  const server = await startServer(serverConfig(method, overrides.server), { graceMs: 0 });
  const local = await startLocal(localConfig(method, server.addr.port, overrides.local), {
    graceMs: 0,
  });
  return {
    server,
    local,
    close: async () => {
      await local.close();
      await server.close();
    },
  };
}

export interface EchoServer {
  port: number;
  /** Bytes it has received so far, over every connection. */
  readonly received: number;
  /** Connections accepted so far, and those open now. */
  readonly accepted: number;
  readonly open: number;
  close(): Promise<void>;
}

/** A TCP echo target: echoes everything, then half-closes when the peer half-closes. */
export function startEchoServer(): EchoServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions = new Set<Promise<void>>();
  let received = 0;
  let accepted = 0;
  const serve = async (conn: Deno.TcpConn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += n;
        await writeAll(conn, buffer.subarray(0, n));
      }
      await conn.closeWrite();
      // Wait for the peer to finish before closing, so nothing is reset.
      while ((await conn.read(buffer)) !== null) { /* drain */ }
    } catch {
      // The relay closing mid-test is fine for an echo target; tests assert on their side.
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      accepted++;
      const session = serve(conn);
      sessions.add(session);
      session.finally(() => sessions.delete(session));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get received() {
      return received;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return sessions.size;
    },
    close: async () => {
      listener.close();
      await accepting;
      await Promise.allSettled([...sessions]);
    },
  };
}

/** Sends a SOCKS5 greeting and CONNECT; returns the connection and the REP code. */
export async function socksConnect(
  localPort: number,
  target: Address,
): Promise<{ conn: Deno.TcpConn; reply: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: localPort });
  try {
    await writeAll(conn, Uint8Array.of(5, 1, 0));
    const choice = await readExact(conn, new Uint8Array(2));
    if (!choice || choice[1] !== 0) throw new Error(`Method refused: ${choice}`);
    await writeAll(conn, Uint8Array.of(5, 1, 0, ...encodeAddress(target)));
    const head = await readExact(conn, new Uint8Array(4));
    if (!head) throw new Error("No SOCKS5 reply");
    const addressLength = head[3] === 1 ? 4 + 2 : head[3] === 4 ? 16 + 2 : 0;
    if (addressLength === 0) throw new Error(`Unexpected ATYP in reply: ${head[3]}`);
    await readExact(conn, new Uint8Array(addressLength));
    return { conn, reply: head[1]! };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Reads until end of stream; returns everything read. */
export async function readAll(conn: Deno.Conn, limit = 256 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    parts.push(buffer.slice(0, n));
    total += n;
    if (total > limit) throw new Error(`Read more than ${limit} bytes`);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Polls `condition` every 10 ms until it holds or `timeoutMs` passes. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
) {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The value of one sample in a Prometheus exposition, 0 when absent. */
export function metricSample(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Whether a session through the SOCKS5 proxy on `socksPort` to the echo target on `echoPort`
 * echoes `bytes` intact; false when the proxy or the server refused or closed it.
 */
export async function echoesThrough(socksPort: number, echoPort: number, bytes = 1000) {
  const { conn, reply } = await socksConnect(socksPort, localhostTarget(echoPort));
  if (reply !== 0) {
    conn.close();
    return false;
  }
  return await echoThrough(conn, bytes, bytes).then(() => true, () => false);
}

export function localhostTarget(port: number): Address {
  return { type: "ipv4", host: "127.0.0.1", port };
}

/** Deterministic pseudo-random bytes (xorshift), so no 64 MiB buffer is kept around. */
export function* pattern(total: number, seed: number, piece = 256 * 1024): Generator<Uint8Array> {
  let x = seed >>> 0 || 1;
  for (let sent = 0; sent < total; sent += piece) {
    const chunk = new Uint8Array(Math.min(piece, total - sent));
    for (let i = 0; i < chunk.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk[i] = x;
      chunk[i + 1] = x >>> 8;
      chunk[i + 2] = x >>> 16;
      chunk[i + 3] = x >>> 24;
    }
    yield chunk;
  }
}

export interface ProbeResult {
  /** The server closed (or sent) before we half-closed. */
  closedEarly: boolean;
  /** Bytes the server sent back. */
  answer: number;
}

/**
 * Sends `bytes`, watches for `quietMs`, half-closes, and reads to the end. A reset at any point
 * is thrown (a `Deno.errors.ConnectionReset` naming the bytes answered before it), never taken
 * for a quiet close: a prober tells a RST from a FIN, so the server must not send one.
 */
export async function probe(port: number, bytes: Uint8Array, quietMs = 150): Promise<ProbeResult> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let answer = 0;
  const reading = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return;
      answer += n;
    }
  })();
  const ended = reading.then(() => true, () => true);
  try {
    if (bytes.length > 0) await writeAll(conn, bytes);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quiet = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), quietMs)
    );
    const closedEarly = await Promise.race([ended, quiet]);
    clearTimeout(timer);
    // After an early close our half-close may find the socket gone; that is the early close.
    if (closedEarly) await conn.closeWrite().catch(() => {});
    else await conn.closeWrite();
    await reading;
    return { closedEarly, answer };
  } catch (error) {
    const reset = error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe;
    if (!reset) throw error;
    await ended; // a reset ends the read as well: count what came before it
    throw new Deno.errors.ConnectionReset(
      `Probe of ${bytes.length} bytes was reset by the server after ${answer} bytes of answer`,
      { cause: error },
    );
  }
}

/** Sessions counted under any status. */
export function countOf(statuses: Record<SessionStatus, number>): number {
  return Object.values(statuses).reduce((a, b) => a + b, 0);
}

/** Sends `total` bytes through `conn` to an echo target; checks the SHA-256 of what returns. */
export async function echoThrough(conn: Deno.TcpConn, total: number, seed: number): Promise<void> {
  const sentHash = createHash("sha256");
  const receivedHash = createHash("sha256");
  let received = 0;
  const reading = (async () => {
    const buffer = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      receivedHash.update(buffer.subarray(0, n));
      received += n;
    }
  })();
  for (const chunk of pattern(total, seed)) {
    sentHash.update(chunk);
    await writeAll(conn, chunk);
  }
  await conn.closeWrite();
  await reading;
  conn.close();
  assertEquals(received, total);
  assertEquals(receivedHash.digest("hex"), sentHash.digest("hex"));
}

/** A TCP forwarder to `port` that records what each client sent, one flight per connection. */
export function recordingForwarder(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const recorded: Uint8Array[][] = [];
  const pipes: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port });
      const parts: Uint8Array[] = [];
      recorded.push(parts);
      const up = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          parts.push(chunk.slice());
          controller.enqueue(chunk);
        },
      });
      pipes.push(
        client.readable.pipeThrough(up).pipeTo(server.writable).catch(() => {}),
        server.readable.pipeTo(client.writable).catch(() => {}),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** Everything each client sent, one piece per connection, in the order they came. */
    flights: () => recorded.map((parts) => concatBytes(...parts)),
    close: async () => {
      listener.close();
      await accepting;
      await Promise.allSettled(pipes);
    },
  };
}
