/**
 * A Shadowsocks TCP connection seen as a plain byte stream. The wire format is a
 * {@linkcode StreamFraming} (AEAD-2017, `none` or the 2022 edition: protocol/stream_framing.ts);
 * this class only does the I/O around it, so the relay reads and writes plaintext and never sees
 * a salt, nonce or tag.
 *
 * Reading: buffer ciphertext until the framing's `wanted` bytes are in, let it open a unit,
 * repeat. A peer that sent nothing at all ends cleanly (a target that closed without a word);
 * otherwise the stream may end only where the framing says so (between chunks).
 * Writing: the framing seals each write into one buffer (salt and headers in front of the first
 * one), written with one `writeAll`.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { StreamFraming, StreamRequest } from "../protocol/stream_framing.ts";
import { closeQuietly, type Duplex, writeAll } from "./io.ts";

/**
 * Bytes of ciphertext buffered per read while reads come back full: a little over two full
 * AEAD-2017 chunks. It grows (to twice the unit) for a peer that sends larger 2022 chunks (up
 * to 0xFFFF).
 */
const READ_BUFFER_SIZE = 2 * (0x3fff + 2 + 2 * 16) + 64;
/**
 * The read buffer while reads come back short, and after the buffer empties on a short read:
 * an idle connection holds only this (see relay/pipe.ts for the measured effect). It holds the
 * next chunk's length block (18 bytes) and a short message whole.
 */
const SMALL_READ_BUFFER_SIZE = 256;
const EMPTY = new Uint8Array(0);

/** A request header and the payload that came with it. */
export interface InboundRequest extends StreamRequest {
  /** The initial payload: bytes for the target that arrived with the header (maybe none). */
  readonly payload: Uint8Array;
}

/** A plaintext `Duplex` over an encrypted connection. */
export class ShadowsocksStream implements Duplex {
  readonly #conn: Duplex;
  readonly #framing: StreamFraming;

  #inbox = new Uint8Array(SMALL_READ_BUFFER_SIZE);
  #lastReadFilled = false;
  #inStart = 0;
  #inEnd = 0;
  #plain: Uint8Array = EMPTY;
  #request: StreamRequest | undefined;
  #eof = false;
  #receivedAny = false;
  /** Bytes that must be buffered before the framing can open more (set when it could not). */
  #need = 0;
  /** Our first flight is out, and the framing was told (`prepareNext`). */
  #firstFlightOut = false;

  constructor(conn: Duplex, framing: StreamFraming) {
    this.#conn = conn;
    this.#framing = framing;
  }

  /**
   * Server side: reads until the client's request header is complete. Throws `ProtocolError`
   * for anything that fails to authenticate or parse, and `ERR_READ_ADDRESS` when the stream
   * ends cleanly before the target address. The payload may be a view of the stream's
   * buffer: treat it as valid until the next read (as `readView`'s).
   */
  async readRequest(): Promise<InboundRequest> {
    const payload = await this.readView();
    if (payload === null) {
      throw new ProtocolError("ERR_READ_ADDRESS", "Stream ended before the target address");
    }
    const request = this.#request;
    if (request === undefined) throw new Error("Framing gave payload before the request");
    this.#request = undefined;
    return { ...request, payload };
  }

  /**
   * Client side: sends the first flight now, even with no payload yet: salt, headers and
   * `payload` in one write (a 2022 request pads itself when `payload` is empty).
   */
  start(payload: Uint8Array): Promise<void> {
    try {
      return writeAll(this.#conn, this.#framing.seal(payload)).then(() => this.#afterFirstFlight());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Our first flight is written: the framing may make the next session's key now, while the
   * peer works on this one (protocol/spare_writer_key.ts).
   */
  #afterFirstFlight(): void {
    if (this.#firstFlightOut) return;
    this.#firstFlightOut = true;
    this.#framing.prepareNext?.();
  }

  /**
   * Returns the next decrypted payload (never empty, except the one that completes a request
   * header), or null at a clean end of stream. The bytes are the caller's until the next read;
   * the relay writes them on without copying. Throws `ProtocolError` for a bad tag, an
   * oversized length, a failed header check, or an end of stream in the middle of a unit.
   *
   * No async frame: what is buffered is opened at once, and a socket read, when one is needed,
   * is continued by `then` (`#afterRead`). The relay's reads wait most of a session's life, and
   * a suspended frame costs heap for every idle session (bench/throughput.ts, idle memory).
   */
  readView(): Promise<Uint8Array | null> {
    try {
      const view = this.#open();
      if (view !== undefined) return Promise.resolve(view);
      return this.#conn.read(this.#inbox.subarray(this.#inEnd)).then(this.#afterRead);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A read for `readView` came back: take it, and open again (or read more). */
  readonly #afterRead = (n: number | null): Promise<Uint8Array | null> => {
    if (n === null) {
      this.#eof = true;
    } else {
      this.#lastReadFilled = this.#inEnd + n === this.#inbox.length;
      if (n > 0) this.#receivedAny = true;
      this.#inEnd += n;
    }
    return this.readView();
  };

  /**
   * Opens what is buffered: the next payload, null at a clean end of stream, or undefined when
   * `#need` bytes must be read first (the inbox then has room for them).
   */
  #open(): Uint8Array | null | undefined {
    if (this.#plain.length > 0) {
      const plain = this.#plain;
      this.#plain = EMPTY;
      return plain;
    }
    for (;;) {
      if (this.#inEnd - this.#inStart < this.#need) {
        if (!this.#eof) return undefined;
        const empty = this.#inStart === this.#inEnd;
        if (empty && (!this.#receivedAny || this.#framing.atChunkBoundary)) return null;
        throw new ProtocolError("ERR_CIPHER", "Stream ended in the middle of a header or chunk");
      }
      this.#need = 0;
      const step = this.#framing.open(this.#inbox.subarray(this.#inStart, this.#inEnd));
      this.#inStart += step.consumed;
      if (step.request !== undefined) this.#request = step.request;
      if (step.payload !== null && (step.payload.length > 0 || step.request !== undefined)) {
        return step.payload;
      }
      if (step.consumed > 0) continue;
      const wanted = this.#framing.wanted;
      this.#makeRoom(wanted);
      this.#need = wanted;
    }
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#plain.length === 0) {
      const view = await this.readView();
      if (view === null) return null;
      this.#plain = view;
    }
    const n = Math.min(p.length, this.#plain.length);
    p.set(this.#plain.subarray(0, n));
    this.#plain = n === this.#plain.length ? EMPTY : this.#plain.subarray(n);
    return n;
  }

  /**
   * Seals and writes all of `p` (headers go in front of the first write). Not an async
   * function, as every relayed chunk passes here (see `writeAll`).
   */
  write(p: Uint8Array): Promise<number> {
    if (p.length === 0) return Promise.resolve(0);
    try {
      const written = writeAll(this.#conn, this.#framing.seal(p));
      if (this.#firstFlightOut) return written.then(() => p.length);
      return written.then(() => {
        this.#afterFirstFlight();
        return p.length;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    closeQuietly(this.#conn);
  }

  /**
   * Sizes and compacts the inbox so `wanted` unconsumed bytes fit: the big buffer while reads
   * come back full or a unit needs it, the small one once an idle read finds it empty.
   */
  #makeRoom(wanted: number): void {
    const buffered = this.#inEnd - this.#inStart;
    let size = this.#inbox.length;
    if (wanted > size) {
      size = Math.max(READ_BUFFER_SIZE, 2 * wanted + 64);
    } else if (this.#lastReadFilled) {
      size = Math.max(size, READ_BUFFER_SIZE);
    } else if (buffered === 0 && wanted <= SMALL_READ_BUFFER_SIZE) {
      size = SMALL_READ_BUFFER_SIZE;
    }
    if (size !== this.#inbox.length) {
      const next = new Uint8Array(size);
      next.set(this.#inbox.subarray(this.#inStart, this.#inEnd));
      this.#inbox = next;
      this.#inStart = 0;
      this.#inEnd = buffered;
    } else if (this.#inStart + wanted > size) {
      this.#inbox.copyWithin(0, this.#inStart, this.#inEnd);
      this.#inStart = 0;
      this.#inEnd = buffered;
    }
  }
}
