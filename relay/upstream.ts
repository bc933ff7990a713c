/**
 * The half of a client-side session that the SOCKS5 local and the tunnel share: dial the
 * Shadowsocks server, then send the first flight and relay. The first flight carries the
 * application's first bytes when they arrive within `FIRST_PAYLOAD_WAIT_MS`, so salt, header and
 * data leave in one packet.
 * @module
 */
import { findMethod, type MethodInfo } from "../crypto/methods.ts";
import { errorMessage, type SessionStatus } from "../protocol/errors.ts";
import { type ClientFramings, clientFramings } from "../protocol/session_framings.ts";
import type { BufferedConn } from "./buffered_conn.ts";
import { relay } from "./pipe.ts";
import type { ByteCounter } from "./service.ts";
import type { ShadowsocksStream } from "./shadowsocks_stream.ts";
import { createUdpClientCipher, type UdpClientCipher } from "./shadowsocks_udp.ts";
import { applyNoDelay } from "./io.ts";

/**
 * How long to wait for the application's first bytes before sending the header alone.
 * Client-first protocols (HTTP, TLS) send within this; server-first ones (SMTP, SSH banners)
 * pay it once per connection.
 */
export const FIRST_PAYLOAD_WAIT_MS = 20;

/** The keys of a client role (local, tunnel): TCP framings and, unless TCP-only, the UDP cipher. */
export interface ClientKeys {
  method: MethodInfo;
  framings: ClientFramings;
  udpCipher: UdpClientCipher | undefined;
}

/**
 * Parses the method and keys of a client role's config. Called before anything is bound, so an
 * unknown method, a bad key (InvalidPskError) or a method without UDP fails the start.
 */
export function clientKeys(
  config: {
    method: string;
    password: string;
    mode: string;
    prefix?: Uint8Array | undefined;
    udpPrefix?: Uint8Array | undefined;
  },
): ClientKeys {
  const method = findMethod(config.method);
  if (!method) throw new RangeError(`Invalid method "${config.method}"`);
  const framings = clientFramings(method, config.password, config.prefix);
  const udpCipher = config.mode === "tcp_only"
    ? undefined
    : createUdpClientCipher(method, config.password, config.udpPrefix);
  return { method, framings, udpCipher };
}

/** Where the server is and how to dial it. */
export interface UpstreamConfig {
  server: string;
  serverPort: number;
  noDelay: boolean;
}

/** Connects to the Shadowsocks server; `signal` bounds the attempt. */
export async function connectUpstream(
  config: UpstreamConfig,
  signal: AbortSignal,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: config.server, port: config.serverPort, signal });
  applyNoDelay(conn, config.noDelay);
  return conn;
}

export interface UpstreamRelayOptions {
  idleTimeoutMs: number;
  signal: AbortSignal;
  countBytes: ByteCounter;
}

/** Sends the first flight (with the app's first bytes, if any come) and relays until the end. */
export async function relayUpstream(
  client: BufferedConn,
  stream: ShadowsocksStream,
  options: UpstreamRelayOptions,
): Promise<{ status: SessionStatus; detail?: string }> {
  let firstPayload: Uint8Array;
  try {
    firstPayload = await client.takeBuffered(FIRST_PAYLOAD_WAIT_MS);
  } catch (error) {
    stream.close();
    return { status: "ERR_RELAY_CLIENT", detail: errorMessage(error) };
  }
  try {
    await stream.start(firstPayload);
  } catch (error) {
    stream.close();
    return { status: "ERR_RELAY_TARGET", detail: `cannot write to server: ${errorMessage(error)}` };
  }
  options.countBytes("uplink", firstPayload.length);
  const status = await relay(client, stream, {
    idleTimeoutMs: options.idleTimeoutMs,
    signal: options.signal,
    onBytes: options.countBytes,
  });
  return { status };
}
