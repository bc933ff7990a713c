/**
 * `ssdeno check`: tests a Shadowsocks server end to end from the user's side and says in plain
 * words what is wrong. Each step is timed: resolve the server's name, connect, send a request
 * through the server to a target (a TLS ClientHello on port 443, else an HTTP HEAD), wait for the
 * target's first answer bytes; with UDP, one datagram (a DNS query) there and back.
 *
 * The diagnosis reads what the server did: refused, silent connect, closed at once, answered
 * with bytes that do not decrypt, or held the connection silently (how servers with probe
 * resistance, ours and shadowsocks-rust among them, treat a wrong key: they read until their
 * handshake deadline and never answer).
 * @module
 */
import type { UpstreamServer } from "../config/types.ts";
import {
  type Address,
  addressFromHost,
  encodeAddress,
  formatAddress,
} from "../protocol/address.ts";
import { TimestampError } from "../protocol/aead2022_time.ts";
import { errorMessage, ProtocolError } from "../protocol/errors.ts";
import { buildClientHello, tlsRecordKind } from "../protocol/tls_client_hello.ts";
import { clientKeys } from "../relay/upstream.ts";
import { ShadowsocksStream } from "../relay/shadowsocks_stream.ts";
import { closeQuietly } from "../relay/io.ts";
import { silentLogger } from "../relay/log.ts";
import { resolveTarget } from "../relay/direct.ts";
import { findPlugin, startClientPlugin } from "./plugin.ts";
import { MAX_TIMESTAMP_SKEW } from "../protocol/aead2022_time.ts";
import { fetCheck, type FetRule } from "../protocol/fet.ts";

/** What `check` tests against when `--target` is not given: answers TLS from most networks. */
export const DEFAULT_CHECK_TARGET = "www.google.com:443";
/** Where the UDP datagram goes when `--udp-target` is not given: a public DNS resolver. */
export const DEFAULT_UDP_TARGET = "1.1.1.1:53";

export interface CheckOptions {
  target: Address;
  /** Also check UDP, with a DNS query to this address. */
  udpTarget?: Address;
  /** How long the connect may take, and then the answer. */
  timeoutMs: number;
  /** Called with each step's line as it completes (the command prints them at once). */
  onStep?: (line: string) => void;
}

export interface CheckStep {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface CheckResult {
  ok: boolean;
  steps: CheckStep[];
  /** One sentence: what works, or the likely cause of what does not. */
  diagnosis: string;
}

/** Runs every step against `server`; never throws for what the network or the server does. */
export async function checkServer(
  server: UpstreamServer,
  options: CheckOptions,
): Promise<CheckResult> {
  const steps: CheckStep[] = [];
  const step = (name: string, ok: boolean, started: number, detail: string) => {
    const entry = { name, ok, ms: Math.round(performance.now() - started), detail };
    steps.push(entry);
    options.onStep?.(formatStep(entry));
    return entry;
  };
  const fail = (diagnosis: string): CheckResult => ({ ok: false, steps, diagnosis });
  const where = formatAddress(addressFromHost(server.server, server.serverPort));
  const keys = clientKeys({ ...server, mode: options.udpTarget ? "tcp_and_udp" : "tcp_only" });
  let skew: number | undefined;

  let started = performance.now();
  let ip: string;
  try {
    const [first] = await resolveTarget(addressFromHost(server.server, server.serverPort));
    ip = first!;
    if (ip !== server.server) step("resolve", true, started, `${server.server} is ${ip}`);
  } catch (error) {
    step("resolve", false, started, errorMessage(error));
    return fail(`the server's name ${server.server} does not resolve: check its spelling or DNS`);
  }

  let plugin: ReturnType<typeof startClientPlugin> | undefined;
  if (server.plugin) {
    if (findPlugin(server.plugin.name) === undefined) {
      return fail(
        `the plugin "${server.plugin.name}" is not installed: install it or give its path`,
      );
    }
    plugin = startClientPlugin(server.plugin, { host: ip, port: server.serverPort }, silentLogger);
  }
  try {
    started = performance.now();
    let conn: Deno.TcpConn;
    try {
      conn = await connectWithin(
        plugin
          ? { hostname: plugin.host, port: plugin.port }
          : { hostname: ip, port: server.serverPort },
        options.timeoutMs,
        plugin !== undefined,
      );
    } catch (error) {
      const refused = error instanceof Deno.errors.ConnectionRefused;
      step("tcp connect", false, started, refused ? "refused" : errorMessage(error));
      return fail(
        refused
          ? `nothing listens on ${where}: the server is down, the port is wrong, or a firewall rejects it`
          : `no answer to the TCP connect to ${where} within ${options.timeoutMs / 1000} s: ` +
            "the host is down or a firewall drops the packets",
      );
    }
    step("tcp connect", true, started, plugin ? `${where} via ${server.plugin!.name}` : where);

    const targetText = formatAddress(options.target);
    const framing = keys.framings.session(options.target, { onServerSkew: (s) => skew = s });
    const stream = new ShadowsocksStream(conn, framing);
    started = performance.now();
    const outcome = await requestThrough(stream, options.target, options.timeoutMs);
    closeQuietly(stream);
    if (outcome.kind === "answer") {
      step("request", true, started, `${targetText} answered: ${outcome.what}`);
    } else {
      step("request", false, started, `${targetText}: ${outcome.detail}`);
      return fail(diagnoseRequest(outcome, server, skew, options.timeoutMs));
    }

    if (options.udpTarget && keys.udpCipher) {
      started = performance.now();
      const udpText = formatAddress(options.udpTarget);
      try {
        await udpExchange(
          keys.udpCipher,
          ip,
          server.serverPort,
          options.udpTarget,
          options.timeoutMs,
        );
        step("udp", true, started, `${udpText} answered`);
      } catch (error) {
        step("udp", false, started, `${udpText}: ${errorMessage(error)}`);
        return fail(
          error instanceof ProtocolError
            ? "a UDP answer came back that does not decrypt: the UDP key or method differs"
            : `no UDP answer within ${options.timeoutMs / 1000} s while TCP works: the server ` +
              "may run TCP only, or UDP is blocked on the way (or by the target)",
        );
      }
    }
    const skewNote = skew !== undefined && Math.abs(skew) >= 10
      ? ` (server clock ${skew} s off)`
      : "";
    return {
      ok: true,
      steps,
      diagnosis: `the server works${
        options.udpTarget ? " for TCP and UDP" : " for TCP"
      }${skewNote}`,
    };
  } finally {
    await plugin?.plugin.close();
  }
}

/** Connects, bounded by `timeoutMs`; a plugin gets a few tries while it starts listening. */
async function connectWithin(
  address: { hostname: string; port: number },
  timeoutMs: number,
  viaPlugin: boolean,
): Promise<Deno.TcpConn> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (let attempt = 0;; attempt++) {
    try {
      return await Deno.connect({ ...address, signal });
    } catch (error) {
      const retry = viaPlugin && error instanceof Deno.errors.ConnectionRefused && attempt < 40;
      if (!retry || signal.aborted) {
        if (signal.aborted) throw new Error(`no answer within ${timeoutMs / 1000} s`);
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

type RequestOutcome =
  | { kind: "answer"; what: string }
  | { kind: "closed"; detail: string; afterMs: number }
  | { kind: "silent"; detail: string }
  | { kind: "undecryptable"; detail: string }
  | { kind: "skew"; detail: string; skew: number };

/** Sends the request through `stream` and waits for the target's first answer bytes. */
async function requestThrough(
  stream: ShadowsocksStream,
  target: Address,
  timeoutMs: number,
): Promise<RequestOutcome> {
  const started = performance.now();
  const https = target.port === 443;
  const request = requestFor(target);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(stream);
  }, timeoutMs);
  try {
    await stream.start(request);
    const first = await stream.readView();
    if (first === null || first.length === 0) {
      if (timedOut) return { kind: "silent", detail: "no answer, connection held open" };
      return {
        kind: "closed",
        detail: "closed without an answer",
        afterMs: performance.now() - started,
      };
    }
    return { kind: "answer", what: describeAnswer(first, https) };
  } catch (error) {
    if (timedOut) return { kind: "silent", detail: "no answer, connection held open" };
    if (error instanceof TimestampError) {
      return { kind: "skew", detail: error.message, skew: error.skew };
    }
    if (error instanceof ProtocolError) return { kind: "undecryptable", detail: error.message };
    return { kind: "closed", detail: errorMessage(error), afterMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** What the check sends the target: a TLS ClientHello on port 443, else an HTTP HEAD. */
function requestFor(target: Address): Uint8Array {
  if (target.port === 443) return buildClientHello(target.host);
  const host = target.type === "ipv6" ? `[${target.host}]` : target.host;
  return new TextEncoder().encode(`HEAD / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
}

function describeAnswer(first: Uint8Array, https: boolean): string {
  if (https) {
    const kind = tlsRecordKind(first);
    return kind === "handshake" ? "TLS handshake" : kind === "alert" ? "TLS alert" : "data";
  }
  const line = new TextDecoder().decode(first.subarray(0, 64)).split("\r\n")[0]!;
  return /^HTTP\/\d/.test(line) ? line : `${first.length} bytes`;
}

/** Plain words for a request that got no answer. */
function diagnoseRequest(
  outcome: Exclude<RequestOutcome, { kind: "answer" }>,
  server: UpstreamServer,
  skew: number | undefined,
  timeoutMs: number,
): string {
  const is2022 = server.method.startsWith("2022-");
  switch (outcome.kind) {
    case "skew":
      return `the server's clock is ${outcome.skew} s off ours (more than ±${MAX_TIMESTAMP_SKEW} s): ` +
        "fix the time on one side (2022 methods check it)";
    case "undecryptable":
      return "the server answered with bytes that do not decrypt: the password or method differs " +
        "from the server's, or it is not a Shadowsocks server";
    case "silent":
      return `connection held silently until the ${timeoutMs / 1000} s deadline: likely a wrong ` +
        `password or method${is2022 ? ", or a clock skew of more than 30 s (2022)" : ""}` +
        (skew !== undefined ? "" : "; or the target does not answer the request");
    case "closed":
      return outcome.afterMs < 2000
        ? "the server closed the connection without an answer: the target may be unreachable " +
          "from the server or refused by its rules, or the key is wrong on a server that closes " +
          "at once"
        : "the server closed the connection after a while without an answer: likely a wrong " +
          "password or method (its handshake deadline passed)";
  }
}

/** How first packets of one client configuration fare against the FET exemption rules. */
export interface FetSummary {
  samples: number;
  exempt: number;
  /** How many samples each rule exempted. */
  byRule: Partial<Record<FetRule, number>>;
}

/**
 * Builds `samples` first packets the client would send to `target` through `server` (salt,
 * with its prefix, then the sealed header and request, as the first write puts them in one
 * segment) and counts how many the GFW's published exemption rules let through. Salts are
 * random, so one packet says little; the share over many is what a censor sees.
 */
export function fetSummary(server: UpstreamServer, target: Address, samples = 1000): FetSummary {
  const keys = clientKeys({ ...server, mode: "tcp_only" });
  const summary: FetSummary = { samples, exempt: 0, byRule: {} };
  for (let i = 0; i < samples; i++) {
    const framing = keys.framings.session(target);
    const first = framing.seal(requestFor(target));
    const result = fetCheck(first);
    if (result.exempt) summary.exempt++;
    for (const rule of result.rules) summary.byRule[rule] = (summary.byRule[rule] ?? 0) + 1;
  }
  return summary;
}

/** One DNS query through the server's UDP relay; resolves on a reply that decrypts. */
async function udpExchange(
  cipher: NonNullable<ReturnType<typeof clientKeys>["udpCipher"]>,
  serverIp: string,
  serverPort: number,
  target: Address,
  timeoutMs: number,
): Promise<void> {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: serverIp.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  const timer = setTimeout(() => socket.close(), timeoutMs);
  try {
    const session = cipher.newSession();
    const query = dnsQuery("example.com");
    const plaintext = new Uint8Array([...encodeAddress(target), ...query]);
    await socket.send(session.seal(plaintext), {
      transport: "udp",
      hostname: serverIp,
      port: serverPort,
    });
    for (;;) {
      let packet: Uint8Array;
      try {
        [packet] = await socket.receive();
      } catch {
        throw new Error("no answer");
      }
      session.open(packet);
      return;
    }
  } finally {
    clearTimeout(timer);
    try {
      socket.close();
    } catch { /* closed by the timer */ }
  }
}

/** A DNS query for `name`, type A, recursion desired (RFC 1035 §4.1). */
function dnsQuery(name: string): Uint8Array {
  const labels = name.split(".").flatMap((
    label,
  ) => [label.length, ...new TextEncoder().encode(label)]);
  const id = crypto.getRandomValues(new Uint8Array(2));
  return Uint8Array.of(
    id[0]!,
    id[1]!,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...labels,
    0,
    0,
    1,
    0,
    1,
  );
}

function formatStep(step: CheckStep): string {
  return `  ${step.ok ? "ok  " : "FAIL"} ${step.name.padEnd(12)} ${
    `${step.ms} ms`.padStart(8)
  }  ${step.detail}`;
}
