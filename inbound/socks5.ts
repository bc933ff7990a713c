/**
 * The SOCKS5 inbound (RFC 1928, NOTES.md §1): greeting → method selection (no authentication,
 * or username/password per RFC 1929 when users are configured) → request. CONNECT becomes a
 * request for the session line; UDP ASSOCIATE, when the mode has UDP, is a session of its own
 * (relay/socks_udp_associate.ts). REP 0x07 for other commands (and CONNECT in `udp_only`), 0x08
 * for unknown address types; connect failures get the closest REP code.
 * @module
 */
import { addressFromHost } from "../protocol/address.ts";
import { ProtocolError, type SessionStatus } from "../protocol/errors.ts";
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
} from "../protocol/socks5.ts";
import {
  chooseMethod,
  credentialsMatch,
  encodeUserPassReply,
  METHOD_USER_PASS,
  parseUserPassRequest,
} from "../protocol/socks5_auth.ts";
import type { BufferedConn } from "../relay/buffered_conn.ts";
import { writeAll } from "../relay/io.ts";
import { serveUdpAssociate, type UdpAssociateContext } from "../relay/socks_udp_associate.ts";
import type { Accepted, Inbound, ReplyResult } from "./inbound.ts";
import { sendQuietly } from "./reply.ts";

export interface Socks5Options {
  /** Users and passwords; when set, only RFC 1929 authentication is accepted. */
  readonly users?: ReadonlyMap<string, string>;
  /** Present when the mode has UDP: UDP ASSOCIATE is served. */
  readonly udp?: UdpAssociateContext;
  /** False in `udp_only`: CONNECT is refused with REP 0x07. */
  readonly tcp: boolean;
}

export class Socks5Inbound implements Inbound {
  readonly #options: Socks5Options;

  constructor(options: Socks5Options) {
    this.#options = options;
  }

  async accept(client: BufferedConn, conn: Deno.TcpConn): Promise<Accepted> {
    const { users, udp, tcp } = this.#options;
    const greeting = await client.parse(parseGreeting);
    const method = chooseMethod(greeting.methods, users !== undefined && users.size > 0);
    await writeAll(conn, Uint8Array.of(SOCKS_VERSION, method));
    if (method === METHOD_NONE_ACCEPTABLE) {
      throw new ProtocolError(
        users?.size ? "ERR_AUTH" : "ERR_CLIENT_PROTOCOL",
        "no acceptable authentication method offered",
      );
    }
    let user: string | undefined;
    if (method === METHOD_USER_PASS) {
      let credentials;
      try {
        credentials = await client.parse(parseUserPassRequest);
      } catch (error) {
        // RFC 1929: any failure gets a non-zero status, then the connection closes.
        await sendQuietly(conn, encodeUserPassReply(false));
        throw error;
      }
      const ok = credentialsMatch(users!, credentials.user, credentials.password);
      await writeAll(conn, encodeUserPassReply(ok));
      if (!ok) throw new ProtocolError("ERR_AUTH", `wrong credentials for "${credentials.user}"`);
      user = credentials.user;
    } else if (method !== METHOD_NO_AUTH) {
      throw new Error(`chooseMethod returned ${method}`);
    }

    let request;
    try {
      request = await client.parse(parseRequest);
    } catch (error) {
      if (error instanceof SocksRequestError) await sendQuietly(conn, encodeReply(error.reply));
      throw error;
    }
    if (request.command === CMD_UDP_ASSOCIATE && udp) {
      return {
        kind: "handled",
        run: async () => ({
          status: await serveUdpAssociate(conn, client, request.address, udp),
          detail: "udp associate",
        }),
      };
    }
    if (request.command !== CMD_CONNECT || !tcp) {
      await sendQuietly(conn, encodeReply(Reply.commandNotSupported));
      throw new ProtocolError("ERR_CLIENT_PROTOCOL", `unsupported command ${request.command}`);
    }
    return {
      kind: "connect",
      target: request.address,
      ...(user === undefined ? {} : { user }),
      async reply(result: ReplyResult) {
        if ("bound" in result) {
          const { hostname, port } = result.bound;
          await writeAll(conn, encodeReply(Reply.succeeded, addressFromHost(hostname, port)));
          return client;
        }
        await sendQuietly(conn, encodeReply(socks5ReplyFor(result.status, result.error)));
        return undefined;
      },
    };
  }
}

/** The REP code that tells an application why its CONNECT failed. */
export function socks5ReplyFor(status: SessionStatus, error: unknown): number {
  switch (status) {
    case "ERR_BLOCKED":
    case "ERR_TARGET_FORBIDDEN":
      return Reply.notAllowed;
    case "ERR_RESOLVE":
      return Reply.hostUnreachable;
    case "ERR_TIMEOUT":
      return Reply.ttlExpired;
    case "ERR_CONNECT":
      return replyForConnectError(error);
    default:
      return Reply.generalFailure;
  }
}

/** Maps a failure to reach the target or the server to the closest SOCKS5 REP code. */
export function replyForConnectError(error: unknown): number {
  const cause = error instanceof ProtocolError && error.cause !== undefined ? error.cause : error;
  if (cause instanceof Deno.errors.ConnectionRefused) return Reply.connectionRefused;
  if (cause instanceof Deno.errors.NetworkUnreachable) return Reply.networkUnreachable;
  if (cause instanceof Deno.errors.TimedOut) return Reply.ttlExpired;
  if (cause instanceof DOMException && cause.name === "TimeoutError") return Reply.ttlExpired;
  if (cause instanceof Deno.errors.NotFound) return Reply.hostUnreachable;
  if (
    cause instanceof Error && /failed to lookup|Name or service|No address/i.test(cause.message)
  ) {
    return Reply.hostUnreachable;
  }
  return Reply.generalFailure;
}
