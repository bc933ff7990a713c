/**
 * The local role: a SOCKS5 server (RFC 1928) for applications; every CONNECT becomes one
 * Shadowsocks connection to the configured server.
 *
 * Stages of one session:
 *   1. greeting → method selection (no-auth only; 0xFF when the client does not offer it)
 *   2. request → CONNECT, or UDP ASSOCIATE when `mode` includes UDP (relay/socks_udp_associate.ts);
 *      REP 0x07 for other commands and for CONNECT in `udp_only`, 0x08 for unknown address types
 *   3. connect to the Shadowsocks server (REP 0x05/0x04/0x03/0x06/0x01 on failure)
 *   4. reply success with the local address of that server connection
 *   5. first write to the server: salt + request header + the app's first bytes, in one write
 *      (2022: random padding instead when the app has said nothing within 20 ms)
 *   6. relay: uplink = app → server (encrypting), downlink = server → app (decrypting)
 * @module
 */
import type { LocalConfig } from "./config/types.ts";
import { addressFromHost, formatAddress } from "./protocol/address.ts";
import { MAX_TIMESTAMP_SKEW } from "./protocol/aead2022_time.ts";
import { errorMessage, ProtocolError, type SessionStatus } from "./protocol/errors.ts";
import type { ClientFramings } from "./protocol/session_framings.ts";
import {
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  encodeReply,
  METHOD_NO_AUTH,
  METHOD_NONE_ACCEPTABLE,
  parseGreeting,
  parseRequest,
  Reply,
  SOCKS_VERSION,
  SocksRequestError,
} from "./protocol/socks5.ts";
import { BufferedConn } from "./relay/buffered_conn.ts";
import { Deadline } from "./relay/deadline.ts";
import { closeQuietly, writeAll } from "./relay/io.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { listenTcp } from "./relay/listen.ts";
import {
  type ByteCounter,
  type RunningService,
  serveConnections,
  type ServiceOptions,
} from "./relay/service.ts";
import { ShadowsocksStream } from "./relay/shadowsocks_stream.ts";
import {
  createAssociationTable,
  serveUdpAssociate,
  type UdpAssociateContext,
} from "./relay/socks_udp_associate.ts";
import { createUdpStats } from "./relay/udp_stats.ts";
import { clientKeys, connectUpstream, relayUpstream } from "./relay/upstream.ts";

export type { RunningService, ServiceOptions };

/** A 2022 server clock this far off (seconds) still passes but earns a debug line. */
const NOTABLE_SKEW_S = 10;

interface LocalContext {
  config: LocalConfig;
  /** The server's keys: one framing per session. */
  framings: ClientFramings;
  logger: Logger;
  /** Present when `mode` includes UDP. */
  udp?: UdpAssociateContext;
}

/** Starts the SOCKS5 local listener on `config.localAddress:config.localPort`. */
// deno-lint-ignore require-await -- async so that a bind or key failure is a rejection, not a throw
export async function startLocal(
  config: LocalConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  // Keys are parsed before anything is bound: a bad one fails the start.
  const { method, framings, udpCipher } = clientKeys(config);
  const logger = options.logger ?? silentLogger;
  const context: LocalContext = { config, framings, logger };
  const listener = listenTcp(config.localAddress, config.localPort);
  if (udpCipher) {
    const stats = createUdpStats();
    const associations = createAssociationTable({
      capacity: config.udpMaxAssociations,
      idleMs: config.udpTimeout * 1000,
      stats,
    });
    context.udp = {
      cipher: udpCipher,
      server: config.server,
      serverPort: config.serverPort,
      associations,
      stats,
      logger,
    };
  }
  const tcp = serveConnections(
    listener,
    (conn, signal, countBytes) => serveSocksSession(conn, context, signal, countBytes),
    { ...options, logger, name: "local" },
  );
  const udp = context.udp;
  // Associations end with their control connections; the table only has its timer left.
  const service: RunningService = udp
    ? {
      ...tcp,
      udpStats: udp.stats,
      closed: tcp.closed.then(() => udp.associations.close()),
      close: () => tcp.close().then(() => udp.associations.close()),
    }
    : tcp;
  logger.info(
    `local SOCKS5 listening on ${service.addr.hostname}:${service.addr.port}, server ${
      formatAddress(addressFromHost(config.server, config.serverPort))
    } (${method.name})`,
  );
  return service;
}

async function serveSocksSession(
  conn: Deno.TcpConn,
  context: LocalContext,
  signal: AbortSignal,
  countBytes: ByteCounter,
): Promise<SessionStatus> {
  const { config, logger } = context;
  const started = Date.now();
  const finish = (status: SessionStatus, detail: string) => {
    const line = `local ${conn.remoteAddr.hostname}:${conn.remoteAddr.port} ${status} ${detail} (${
      Date.now() - started
    } ms)`;
    if (status === "ERR_CONNECT") logger.info(line);
    else logger.debug(line);
    return status;
  };
  const deadline = new Deadline(config.handshakeTimeout * 1000, () => closeQuietly(conn));
  const client = new BufferedConn(conn);

  let request;
  try {
    const greeting = await client.parse(parseGreeting);
    if (!greeting.methods.includes(METHOD_NO_AUTH)) {
      await writeAll(conn, Uint8Array.of(SOCKS_VERSION, METHOD_NONE_ACCEPTABLE));
      deadline.clear();
      return finish("ERR_READ_ADDRESS", "no acceptable authentication method");
    }
    await writeAll(conn, Uint8Array.of(SOCKS_VERSION, METHOD_NO_AUTH));
    request = await client.parse(parseRequest);
  } catch (error) {
    deadline.clear();
    if (error instanceof SocksRequestError) await sendReply(conn, error.reply);
    return finishHandshakeError(error, deadline, finish);
  }

  if (request.command === CMD_UDP_ASSOCIATE && context.udp) {
    deadline.clear();
    const status = await serveUdpAssociate(conn, client, request.address, context.udp);
    return finish(status, "udp associate");
  }
  if (request.command !== CMD_CONNECT || config.mode === "udp_only") {
    deadline.clear();
    await sendReply(conn, Reply.commandNotSupported);
    return finish("ERR_READ_ADDRESS", `unsupported command ${request.command}`);
  }

  let serverConn: Deno.TcpConn;
  try {
    serverConn = await connectUpstream(
      config,
      deadline.linkedSignal(signal),
    );
  } catch (error) {
    deadline.clear();
    await sendReply(conn, replyForConnectError(error));
    return finish("ERR_CONNECT", `cannot reach server: ${errorMessage(error)}`);
  }
  conn.setNoDelay(config.noDelay);

  const stream = new ShadowsocksStream(
    serverConn,
    context.framings.session(request.address, {
      onServerSkew: (skew) => logServerSkew(logger, "local", skew),
    }),
  );
  try {
    const bound = serverConn.localAddr;
    await writeAll(conn, encodeReply(Reply.succeeded, addressFromHost(bound.hostname, bound.port)));
  } catch (error) {
    stream.close();
    return finish("ERR_RELAY_CLIENT", errorMessage(error));
  } finally {
    deadline.clear();
  }
  const { status, detail } = await relayUpstream(client, stream, {
    idleTimeoutMs: config.timeout * 1000,
    signal,
    countBytes,
  });
  return finish(status, detail ?? formatAddress(request.address));
}

/** Says so when a 2022 server's clock is off: refused beyond ±30 s, worth a look from 10 s. */
export function logServerSkew(logger: Logger, role: string, skew: number): void {
  if (Math.abs(skew) > MAX_TIMESTAMP_SKEW) {
    logger.info(`${role}: server clock skew of ${skew} s exceeds ±${MAX_TIMESTAMP_SKEW} s`);
  } else if (Math.abs(skew) >= NOTABLE_SKEW_S) {
    logger.debug(`${role}: server clock skew of ${skew} s`);
  }
}

function finishHandshakeError(
  error: unknown,
  deadline: Deadline,
  finish: (status: SessionStatus, detail: string) => SessionStatus,
): SessionStatus {
  if (deadline.expired) return finish("ERR_TIMEOUT", "handshake deadline passed");
  if (error instanceof ProtocolError) return finish(error.code, error.message);
  return finish("ERR_RELAY_CLIENT", errorMessage(error));
}

/** Sends a failure reply; the client may already be gone, which changes nothing. */
async function sendReply(conn: Deno.TcpConn, reply: number): Promise<void> {
  try {
    await writeAll(conn, encodeReply(reply));
  } catch (error) {
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

/** Maps a failure to reach the Shadowsocks server to the closest SOCKS5 REP code. */
export function replyForConnectError(error: unknown): number {
  if (error instanceof Deno.errors.ConnectionRefused) return Reply.connectionRefused;
  if (error instanceof Deno.errors.NetworkUnreachable) return Reply.networkUnreachable;
  if (error instanceof Deno.errors.TimedOut) return Reply.ttlExpired;
  if (error instanceof DOMException && error.name === "TimeoutError") return Reply.ttlExpired;
  if (error instanceof Deno.errors.NotFound) return Reply.hostUnreachable;
  if (
    error instanceof Error && /failed to lookup|Name or service|No address/i.test(error.message)
  ) {
    return Reply.hostUnreachable;
  }
  return Reply.generalFailure;
}
