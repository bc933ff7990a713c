/**
 * The SOCKS4 and SOCKS4a inbound (NOTES.md §1.7): CONNECT only (BIND gets 0x5B). SOCKS4 has no
 * password, so when users are configured it is refused outright (0x5B), as shadowsocks-rust
 * does: a port that asks SOCKS5 and HTTP clients for credentials cannot let SOCKS4 ones through.
 * Every failure, whatever its cause, is 0x5B: the protocol has no finer code for it.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import {
  encodeSocks4Reply,
  parseSocks4Request,
  SOCKS4_CONNECT,
  Socks4Reply,
} from "../protocol/socks4.ts";
import { addressFromHost } from "../protocol/address.ts";
import type { BufferedConn } from "../relay/buffered_conn.ts";
import { writeAll } from "../relay/io.ts";
import type { Accepted, Inbound, ReplyResult } from "./inbound.ts";
import { sendQuietly } from "./reply.ts";

export class Socks4Inbound implements Inbound {
  readonly #authRequired: boolean;

  constructor(options: { authRequired: boolean }) {
    this.#authRequired = options.authRequired;
  }

  async accept(client: BufferedConn, conn: Deno.TcpConn): Promise<Accepted> {
    const request = await client.parse(parseSocks4Request);
    if (this.#authRequired) {
      await sendQuietly(conn, encodeSocks4Reply(Socks4Reply.rejected));
      throw new ProtocolError("ERR_AUTH", "SOCKS4 has no authentication and users are required");
    }
    if (request.command !== SOCKS4_CONNECT) {
      await sendQuietly(conn, encodeSocks4Reply(Socks4Reply.rejected));
      throw new ProtocolError(
        "ERR_CLIENT_PROTOCOL",
        `unsupported SOCKS4 command ${request.command}`,
      );
    }
    return {
      kind: "connect",
      // USERID is not authenticated, so it names no user of ours.
      target: request.address,
      async reply(result: ReplyResult) {
        if ("bound" in result) {
          const { hostname, port } = result.bound;
          await writeAll(
            conn,
            encodeSocks4Reply(Socks4Reply.granted, addressFromHost(hostname, port)),
          );
          return client;
        }
        await sendQuietly(conn, encodeSocks4Reply(Socks4Reply.rejected));
        return undefined;
      },
    };
  }
}
