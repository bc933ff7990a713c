/**
 * The DNS test kit: a real server (Debian's `dnsmasq`, one process per test file, on a free
 * loopback port), a scripted fake server for what dnsmasq cannot be made to do (SERVFAIL on
 * demand, silence, spoofed and hostile answers), and a builder for DNS messages.
 *
 * Missing dnsmasq: with `CI=true` the test fails with the install hint; elsewhere it is
 * registered as ignored and a line on stdout says why (as the interop peers do).
 *
 * ```ts
 * dnsmasqTest("answers", async (t, dnsmasq) => {
 *   await using server = await startDnsmasq(dnsmasq, ["--host-record=a.test,10.0.0.1,300"]);
 *   // ask 127.0.0.1:server.port ...
 * });
 * ```
 * @module
 */
import { parseIpv4, parseIpv6 } from "../../protocol/address.ts";
import { decodeResponseHead } from "../../protocol/dns.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";
import { closeQuietly, readExact, writeAll } from "../../relay/io.ts";
import { findPeer, freePort, isCi, waitForTcpPort } from "../interop/_peers.ts";
import { spawnCollected } from "../_child.ts";

const INSTALL_HINT = "apt-get install -y --no-install-recommends dnsmasq";
/** Tries with a fresh port when dnsmasq loses the race for the one picked. */
const START_ATTEMPTS = 3;

/** dnsmasq lives in /usr/sbin, which a non-root PATH often lacks. */
export function findDnsmasq(): string | undefined {
  return findPeer("dnsmasq", `${Deno.env.get("PATH") ?? ""}:/usr/sbin:/sbin`);
}

/** Registers a test that needs dnsmasq; see the module doc for what happens when it is missing. */
export function dnsmasqTest(
  name: string,
  fn: (t: Deno.TestContext, dnsmasq: string) => Promise<void>,
): void {
  const binary = findDnsmasq();
  const ci = isCi();
  if (binary === undefined && !ci) {
    console.log(`skipped "${name}": dnsmasq not found: install with ${INSTALL_HINT}`);
  }
  Deno.test({
    name,
    ignore: binary === undefined && !ci,
    async fn(t) {
      if (binary === undefined) throw new Error(`dnsmasq not found: install with ${INSTALL_HINT}`);
      await fn(t, binary);
    },
  });
}

/** A running dnsmasq. `await using` stops it. */
export interface Dnsmasq extends AsyncDisposable {
  readonly pid: number;
  /** UDP and TCP port on 127.0.0.1. */
  readonly port: number;
  /** Its log so far, for failure messages. */
  output(): string;
  /** SIGTERM (SIGKILL after 5 s) to its PID, and waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

/** dnsmasq's version line, e.g. "Dnsmasq version 2.90". */
export async function dnsmasqVersion(binary: string): Promise<string> {
  const out = await new Deno.Command(binary, { args: ["--version"], stderr: "null" }).output();
  return new TextDecoder().decode(out.stdout).split("\n")[0]!.replace(/\s+Copyright.*$/, "");
}

/**
 * Starts dnsmasq in the foreground on 127.0.0.1 and a free port, serving only what `zone`
 * flags describe (no resolv.conf, no hosts file, no config file), and waits until it accepts
 * TCP. A process that exits early (the port was taken meanwhile) is retried on a new port.
 */
export async function startDnsmasq(binary: string, zone: readonly string[]): Promise<Dnsmasq> {
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = freePort();
    const args = [
      "--no-daemon",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--conf-file=/dev/null",
      "--log-facility=-",
      ...zone,
    ];
    const process = spawn(binary, args, port);
    try {
      await waitForTcpPort(port, { exited: process.exited });
      return process;
    } catch (error) {
      await process.stop();
      lastError = new Error(
        `dnsmasq did not start: ${(error as Error).message}\n${process.output()}`,
        {
          cause: error,
        },
      );
    }
  }
  throw lastError;
}

function spawn(
  binary: string,
  args: string[],
  port: number,
): Dnsmasq & { exited: Promise<unknown> } {
  const child = spawnCollected(binary, args);
  const stop = async () => {
    await child.end();
  };
  return {
    pid: child.pid,
    port,
    exited: child.exited,
    output: () => `--- dnsmasq ${args.join(" ")} (pid ${child.pid}) ---\n${child.log()}`,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Messages

/** A resource record to build; `data` is text for A, AAAA and CNAME, or raw RDATA bytes. */
export interface RecordSpec {
  name: string;
  type: number;
  ttl?: number;
  class?: number;
  data: string | Uint8Array | SoaSpec;
}

export interface SoaSpec {
  mname: string;
  rname: string;
  serial?: number;
  minimum: number;
}

export interface MessageSpec {
  id: number;
  /** QR bit; default true (a response). */
  response?: boolean;
  truncated?: boolean;
  rcode?: number;
  /** The one question; null for none. */
  question: { name: string; type: number } | null;
  answers?: RecordSpec[];
  authority?: RecordSpec[];
}

/** A DNS message, names uncompressed (hostile tests splice pointers in by hand). */
export function buildMessage(spec: MessageSpec): Uint8Array {
  const parts: Uint8Array[] = [];
  const header = new Uint8Array(12);
  const view = new DataView(header.buffer);
  view.setUint16(0, spec.id);
  view.setUint16(
    2,
    ((spec.response ?? true) ? 0x8000 : 0) | (spec.truncated ? 0x0200 : 0) | 0x0100 | 0x0080 |
      (spec.rcode ?? 0),
  );
  view.setUint16(4, spec.question ? 1 : 0);
  view.setUint16(6, spec.answers?.length ?? 0);
  view.setUint16(8, spec.authority?.length ?? 0);
  parts.push(header);
  if (spec.question) parts.push(encodeName(spec.question.name), u16(spec.question.type), u16(1));
  for (const record of [...(spec.answers ?? []), ...(spec.authority ?? [])]) {
    parts.push(encodeRecord(record));
  }
  return concat(parts);
}

/** One record on the wire. */
export function encodeRecord(record: RecordSpec): Uint8Array {
  const data = rdata(record);
  return concat([
    encodeName(record.name),
    u16(record.type),
    u16(record.class ?? 1),
    u32(record.ttl ?? 300),
    u16(data.length),
    data,
  ]);
}

/** A name as uncompressed labels. */
export function encodeName(name: string): Uint8Array {
  const labels = name === "" ? [] : name.replace(/\.$/, "").split(".");
  return concat([
    ...labels.map((label) => concat([Uint8Array.of(label.length), ascii(label)])),
    Uint8Array.of(0),
  ]);
}

function rdata(record: RecordSpec): Uint8Array {
  const { data } = record;
  if (data instanceof Uint8Array) return data;
  if (typeof data === "object") {
    return concat([
      encodeName(data.mname),
      encodeName(data.rname),
      u32(data.serial ?? 1),
      u32(3600),
      u32(600),
      u32(86400),
      u32(data.minimum),
    ]);
  }
  if (record.type === 1) return parseIpv4(data);
  if (record.type === 28) return parseIpv6(data);
  return encodeName(data);
}

export function u16(value: number): Uint8Array {
  return Uint8Array.of(value >> 8, value & 0xff);
}

export function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

// ---------------------------------------------------------------------------------------------
// A scripted server

/** A query as the fake server received it. */
export interface FakeQuery {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly transport: "udp" | "tcp";
}

/** What the fake sends back: datagrams (or one TCP message each), some from another port. */
export type FakeReply = Uint8Array | { readonly bytes: Uint8Array; readonly fromOtherPort: true };

/**
 * A DNS server on loopback (UDP, and TCP on the same port) that answers each query with what
 * `handler` returns: nothing (silence), one message, or several (spoofs first).
 */
export class FakeDnsServer implements AsyncDisposable {
  readonly port: number;
  /** Queries received, both transports. */
  readonly queries: FakeQuery[] = [];
  readonly #udp: UdpSocket;
  readonly #other: UdpSocket;
  readonly #tcp: Deno.TcpListener;
  readonly #handler: (query: FakeQuery) => FakeReply[];
  readonly #tasks = new Set<Promise<void>>();
  readonly #conns = new Set<Deno.TcpConn>();
  #closed = false;

  private constructor(
    udp: UdpSocket,
    tcp: Deno.TcpListener,
    handler: (q: FakeQuery) => FakeReply[],
    hostname: string,
  ) {
    this.#udp = udp;
    this.#tcp = tcp;
    this.#other = UdpSocket.bind(hostname, 0);
    this.#handler = handler;
    this.port = udp.addr.port;
    this.#track(this.#serveUdp());
    this.#track(this.#serveTcp());
  }

  /** Binds UDP on a free port and TCP on the same one (retrying if TCP's is taken). */
  static start(handler: (query: FakeQuery) => FakeReply[], hostname = "127.0.0.1"): FakeDnsServer {
    for (let attempt = 0; attempt < 10; attempt++) {
      const udp = UdpSocket.bind(hostname, 0);
      try {
        const tcp = Deno.listen({ hostname, port: udp.addr.port });
        return new FakeDnsServer(udp, tcp, handler, hostname);
      } catch (error) {
        udp.close();
        if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      }
    }
    throw new Error("No port free for both UDP and TCP after 10 tries");
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#udp.close();
    this.#other.close();
    this.#tcp.close();
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.allSettled([...this.#tasks]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  #ask(bytes: Uint8Array, transport: "udp" | "tcp"): FakeReply[] {
    const head = decodeResponseHead(bytes);
    const query = {
      id: head.id,
      name: head.question?.name ?? "",
      type: head.question?.type ?? 0,
      transport,
    };
    this.queries.push(query);
    return this.#handler(query);
  }

  async #serveUdp(): Promise<void> {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const datagram = await this.#udp.receive(buffer);
      if (datagram === null) return;
      const to = { hostname: datagram.from.hostname, port: datagram.from.port };
      for (const reply of this.#ask(datagram.data.slice(), "udp")) {
        if (reply instanceof Uint8Array) await this.#udp.send(reply, to);
        else await this.#other.send(reply.bytes, to);
      }
    }
  }

  async #serveTcp(): Promise<void> {
    try {
      for await (const conn of this.#tcp) {
        this.#conns.add(conn);
        this.#track(
          this.#serveConn(conn).finally(() => {
            this.#conns.delete(conn);
            closeQuietly(conn);
          }),
        );
      }
    } catch (error) {
      if (!this.#closed) throw error;
    }
  }

  async #serveConn(conn: Deno.TcpConn): Promise<void> {
    try {
      const prefix = await readExact(conn, new Uint8Array(2));
      if (prefix === null) return;
      const message = await readExact(conn, new Uint8Array((prefix[0]! << 8) | prefix[1]!));
      if (message === null) return;
      for (const reply of this.#ask(message, "tcp")) {
        const bytes = reply instanceof Uint8Array ? reply : reply.bytes;
        await writeAll(conn, concat([u16(bytes.length), bytes]));
      }
    } catch (error) {
      if (!this.#closed) throw error;
    }
  }
}

/**
 * Polls `condition` every 10 ms until it holds; throws after `timeoutMs`. For counters that
 * change in the background, and for expiry (no event to wait on).
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
