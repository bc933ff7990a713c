/**
 * The seam between a Shadowsocks edition's TCP wire format and the I/O that carries it. A
 * `StreamFraming` is the pure state machine of one connection, both directions: it opens what
 * the peer sends (salt, headers, chunks) into payloads and seals what we send (salt and headers
 * in front of the first write). `relay/shadowsocks_stream.ts` drives any framing over a socket
 * and exposes a plain `Duplex`, so the relay, pipe and service code never learn which edition
 * runs, and never see a salt, nonce or tag.
 *
 * ```
 *            open(input) ──▶ { consumed, payload | null, request? }     peer → us
 *   framing
 *            seal(plain) ──▶ wire bytes (first call: salt + headers)     us → peer
 * ```
 *
 * The request header (target address, and for SIP023 the user) belongs to the framing because
 * the 2022 edition puts it inside its own header; AEAD-2017 carries it at the front of the first
 * payload, and its server framing peels it off so both editions look alike to the server.
 * Implementations: protocol/aead_framing.ts (AEAD-2017, `none`), protocol/aead2022_framing.ts.
 * @module
 */
import type { Address } from "./address.ts";
import type { ChunkStep } from "./aead_chunk.ts";

/** What a server learns from a client's request header. */
export interface StreamRequest {
  /** Where the client wants to go. */
  readonly address: Address;
  /** The user a SIP023 identity header named (multi-user 2022 servers only). */
  readonly user?: string;
  /** Client clock minus ours, in seconds (2022 only: its headers carry a timestamp). */
  readonly skew?: number;
  /**
   * The client's salt (AEAD-2017, 2022) or IV (stream ciphers): what a fleet shares to refuse a
   * connection replayed to another server. Absent where there is none (`table`, `none`).
   */
  readonly salt?: Uint8Array;
}

/** One step of {@linkcode StreamFraming.open}. */
export interface FramingStep extends ChunkStep {
  /**
   * Set on a server framing's first payload step: the request header is complete and the
   * step's payload is the initial payload (possibly empty).
   */
  readonly request?: StreamRequest;
}

/** The wire format of one TCP connection, both directions. Pure: no I/O. */
export interface StreamFraming {
  /** Bytes of input needed before `open` can make progress. */
  readonly wanted: number;
  /** True where the peer's stream may end cleanly (between chunks, after the headers). */
  readonly atChunkBoundary: boolean;
  /**
   * Opens from the front of `input`, consuming at most one unit and returning at most one
   * payload; a null payload means "call again once `wanted` bytes are buffered". Throws
   * `ProtocolError` for anything that fails to authenticate or parse; after that the framing
   * must not be used again. `input` may be decrypted in place: the payload can be a view of
   * it, valid as long as the caller leaves those bytes alone, and a failed unit leaves them
   * unusable.
   */
  open(input: Uint8Array): FramingStep;
  /**
   * Seals `plain` for the peer. The first call puts the salt and headers in front; a client's
   * first call may get an empty payload and still produces a complete request (2022 pads it).
   * An empty `plain` after that, or before a server has anything to answer, gives no bytes.
   */
  seal(plain: Uint8Array): Uint8Array;
  /**
   * Called once our first flight has been written: makes ahead what the next session of the
   * same key will need (protocol/spare_writer_key.ts), off this connection's critical path.
   * Optional; never throws.
   */
  prepareNext?(): void;
}
