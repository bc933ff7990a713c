/**
 * The 2022 edition (SIP022, SIP023) behind the {@linkcode StreamFraming} seam: thin adapters
 * over the pure codecs of protocol/aead2022_tcp.ts, which draws the wire format.
 *
 * ```
 * client seal #1:  salt | EIH × n | AEAD(fixed header) | AEAD(address, padding, payload)   one write
 * client seal #k:  chunks (0xFFFF max)
 * server open:     RequestDecoder: fixed read → checks (NOTES §7.4) → variable header → chunks
 * server seal #1:  salt | AEAD(type 1, timestamp, request salt, length) | AEAD(payload)  first
 *                  bytes of the target, never an empty chunk (so nothing before the target speaks)
 * client open:     ResponseDecoder: salt + header → first payload → chunks
 * ```
 * @module
 */
import type { AeadCipher } from "../crypto/aead_cipher.ts";
import type { Address } from "./address.ts";
import { sealChunks } from "./aead_chunk.ts";
import type { ClientKeys2022, ServerKeys2022 } from "./aead2022_identity.ts";
import { TimestampError } from "./aead2022_time.ts";
import {
  MAX_CHUNK_PAYLOAD_2022,
  type OpenRequestOptions,
  RequestDecoder,
  ResponseDecoder,
  responseFixedReadLength,
  sealRequest,
  sealResponse,
} from "./aead2022_tcp.ts";
import { prepareWriterKey, takeWriterKey } from "./spare_writer_key.ts";
import type { FramingStep, StreamFraming } from "./stream_framing.ts";

/**
 * The server side of one connection: `RequestDecoder` for the client's stream (salt pool and
 * timestamp checks included), `sealResponse` on the first non-empty write, then chunks.
 */
export function serverFraming2022(
  keys: ServerKeys2022,
  options: OpenRequestOptions,
): StreamFraming {
  return new ServerFraming2022(new RequestDecoder(keys, options));
}

/** Classes, not object literals with getters: one is made per session (see aead_framing.ts). */
class ServerFraming2022 implements StreamFraming {
  readonly #decoder: RequestDecoder;
  #cipher: AeadCipher | undefined;

  constructor(decoder: RequestDecoder) {
    this.#decoder = decoder;
  }

  get wanted(): number {
    return this.#decoder.wanted;
  }

  get atChunkBoundary(): boolean {
    return this.#decoder.atChunkBoundary;
  }

  open(input: Uint8Array): FramingStep {
    const step = this.#decoder.next(input);
    const request = step.request;
    if (request === undefined) return { consumed: step.consumed, payload: step.payload };
    return {
      consumed: step.consumed,
      payload: step.payload,
      request: {
        address: request.address,
        skew: request.skew,
        // The decoder's own copy, shared: the fleet's check and the response header only read it.
        salt: request.requestSalt,
        ...(request.user === undefined ? {} : { user: request.user.name }),
      },
    };
  }

  seal(plain: Uint8Array): Uint8Array {
    if (this.#cipher !== undefined) {
      return sealChunks(this.#cipher, plain, MAX_CHUNK_PAYLOAD_2022);
    }
    // The response header travels with the first payload; until there is one, send nothing.
    if (plain.length === 0) return new Uint8Array(0);
    const request = this.#decoder.request;
    if (request === undefined) throw new Error("Cannot answer before the request header");
    const writerKey = takeWriterKey(request.method, request.psk, undefined);
    const response = sealResponse(request, plain, { writerKey });
    this.#cipher = response.cipher;
    return response.bytes;
  }

  /** Makes the next response's salt and key for this PSK (protocol/spare_writer_key.ts). */
  prepareNext(): void {
    const request = this.#decoder.request;
    if (request !== undefined) prepareWriterKey(request.method, request.psk, undefined);
  }
}

/** Options of {@linkcode clientFraming2022}. */
export interface ClientFraming2022Options {
  /**
   * Called once with the server's clock minus ours, in seconds, when the response header
   * opens, also when the skew is beyond ±30 s and the response is refused for it.
   */
  onServerSkew?: (skew: number) => void;
  /** Fixed first bytes of the request salt (Outline's connection prefix). */
  saltPrefix?: Uint8Array;
}

/**
 * The client side of one connection to `target`: the first seal is the whole request
 * (`sealRequest`: padding 1..900 when the payload is empty); the response is opened with
 * `ResponseDecoder` against that request's salt.
 */
export function clientFraming2022(
  keys: ClientKeys2022,
  target: Address,
  options: ClientFraming2022Options = {},
): StreamFraming {
  return new ClientFraming2022(keys, target, options);
}

class ClientFraming2022 implements StreamFraming {
  readonly #keys: ClientKeys2022;
  readonly #target: Address;
  readonly #onServerSkew: ((skew: number) => void) | undefined;
  readonly #saltPrefix: Uint8Array | undefined;
  #cipher: AeadCipher | undefined;
  #decoder: ResponseDecoder | undefined;

  constructor(keys: ClientKeys2022, target: Address, options: ClientFraming2022Options) {
    this.#keys = keys;
    this.#target = target;
    this.#onServerSkew = options.onServerSkew;
    this.#saltPrefix = options.saltPrefix;
  }

  get wanted(): number {
    return this.#decoder?.wanted ?? responseFixedReadLength(this.#keys.method);
  }

  get atChunkBoundary(): boolean {
    return this.#decoder?.atChunkBoundary ?? false;
  }

  open(input: Uint8Array): FramingStep {
    if (this.#decoder === undefined) throw new Error("Cannot open a response before the request");
    try {
      const step = this.#decoder.next(input);
      if (step.header !== undefined) this.#onServerSkew?.(step.header.skew);
      return { consumed: step.consumed, payload: step.payload };
    } catch (error) {
      if (error instanceof TimestampError) this.#onServerSkew?.(error.skew);
      throw error;
    }
  }

  seal(plain: Uint8Array): Uint8Array {
    if (this.#cipher !== undefined) {
      return sealChunks(this.#cipher, plain, MAX_CHUNK_PAYLOAD_2022);
    }
    const { method, userPsk } = this.#keys;
    const writerKey = takeWriterKey(method, userPsk, this.#saltPrefix);
    const request = sealRequest(this.#keys, this.#target, { payload: plain, writerKey });
    this.#cipher = request.cipher;
    this.#decoder = new ResponseDecoder(request.response);
    return request.bytes;
  }

  /** Makes the next request's salt and key for this PSK (protocol/spare_writer_key.ts). */
  prepareNext(): void {
    prepareWriterKey(this.#keys.method, this.#keys.userPsk, this.#saltPrefix);
  }
}
