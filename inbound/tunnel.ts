/**
 * The tunnel inbound (`ss-tunnel`'s TCP side): every connection goes to one fixed target, so
 * there is nothing to parse. It waits up to `FIRST_PAYLOAD_WAIT_MS` for the application's first
 * bytes before the session dials the server: a client that is already gone (a scanner, the
 * backlog of a flood) costs no outbound connection, and one that speaks first has its bytes in
 * the first flight.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { BufferedConn } from "../relay/buffered_conn.ts";
import { FIRST_PAYLOAD_WAIT_MS } from "../relay/upstream.ts";
import type { Accepted, Inbound } from "./inbound.ts";

export class TunnelInbound implements Inbound {
  readonly #target: Address;

  constructor(target: Address) {
    this.#target = target;
  }

  async accept(client: BufferedConn): Promise<Accepted> {
    if (await client.waitForFirstBytes(FIRST_PAYLOAD_WAIT_MS) === "eof") {
      throw new ProtocolError("ERR_CLIENT_PROTOCOL", "closed before sending anything");
    }
    return {
      kind: "connect",
      target: this.#target,
      // Nothing to say on failure: closing the connection is the tunnel's only error reply.
      reply: (result) => Promise.resolve("bound" in result ? client : undefined),
    };
  }
}
