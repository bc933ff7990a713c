/**
 * One port for SOCKS5, SOCKS4/4a and HTTP (NOTES-2 §17.10): the first byte picks the inbound
 * (0x05 SOCKS5, 0x04 SOCKS4, an HTTP method's first letter HTTP) without being consumed; any
 * other first byte closes the connection without a reply. `protocol` narrows the port to
 * `socks` (SOCKS5 and SOCKS4) or `http`.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import { detectInbound } from "../protocol/http_proxy.ts";
import type { BufferedConn } from "../relay/buffered_conn.ts";
import type { Accepted, Inbound } from "./inbound.ts";

export type LocalProtocol = "mixed" | "socks" | "http";
export const LOCAL_PROTOCOLS: readonly LocalProtocol[] = ["mixed", "socks", "http"];

export interface MixedInbounds {
  readonly socks5: Inbound;
  readonly socks4: Inbound;
  readonly http: Inbound;
}

/** The first byte, left in the buffer for the inbound it picks. */
function peekFirstByte(bytes: Uint8Array): { byte: number; length: 0 } | undefined {
  return bytes.length > 0 ? { byte: bytes[0]!, length: 0 } : undefined;
}

export class MixedInbound implements Inbound {
  readonly #inbounds: MixedInbounds;
  readonly #protocol: LocalProtocol;

  constructor(inbounds: MixedInbounds, protocol: LocalProtocol = "mixed") {
    this.#inbounds = inbounds;
    this.#protocol = protocol;
  }

  async accept(client: BufferedConn, conn: Deno.TcpConn): Promise<Accepted> {
    const { byte } = await client.parse(peekFirstByte);
    const kind = detectInbound(byte);
    const allowed = kind !== undefined &&
      (this.#protocol === "mixed" || (this.#protocol === "http") === (kind === "http"));
    if (!allowed) {
      throw new ProtocolError(
        "ERR_CLIENT_PROTOCOL",
        `first byte 0x${byte.toString(16).padStart(2, "0")} is not ${
          this.#protocol === "mixed" ? "SOCKS5, SOCKS4 or HTTP" : this.#protocol.toUpperCase()
        }`,
      );
    }
    return await this.#inbounds[kind].accept(client, conn);
  }
}
