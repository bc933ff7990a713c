/**
 * A connection with a small read-ahead buffer, for inbound handshakes: parse messages with the
 * pure parsers in protocol/, then hand the same object to the relay, which first gets whatever
 * was read ahead (pipelined application data) and then reads straight from the socket.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import { closeQuietly, type Duplex } from "./io.ts";
import { settledWithin } from "./timer_queue.ts";

/** Handshake messages never need more than this (a SOCKS5 request is at most 262 bytes). */
const HANDSHAKE_BUFFER_SIZE = 1024;
/** Buffer for the application's first bytes, read while deciding what to send first. */
const FIRST_READ_SIZE = 2048;
/** What the buffer becomes once the handshake's bytes are taken: nothing held per session. */
const EMPTY = new Uint8Array(0);

export class BufferedConn implements Duplex {
  readonly #conn: Duplex;
  #buffer: Uint8Array = new Uint8Array(HANDSHAKE_BUFFER_SIZE);
  #start = 0;
  #end = 0;
  #pending: Promise<number | null> | undefined;
  /** The application closed its side while `waitForFirstBytes` waited. */
  #eof = false;

  constructor(conn: Duplex) {
    this.#conn = conn;
  }

  /**
   * Reads until `parser` recognises a whole message at the front of the buffer, consumes it and
   * returns it. Throws `ProtocolError` at end of stream or when the message would not fit.
   */
  async parse<T extends { length: number }>(
    parser: (bytes: Uint8Array) => T | undefined,
    maxBytes = HANDSHAKE_BUFFER_SIZE,
  ): Promise<T> {
    for (;;) {
      const message = parser(this.#buffer.subarray(this.#start, this.#end));
      if (message) {
        this.#start += message.length;
        return message;
      }
      if (this.#end === this.#buffer.length) {
        if (this.#start === 0 && this.#buffer.length < maxBytes) {
          // A longer message (an HTTP head): grow, doubling, up to what the caller allows.
          const size = Math.max(HANDSHAKE_BUFFER_SIZE, this.#buffer.length * 2);
          const grown = new Uint8Array(Math.min(maxBytes, size));
          grown.set(this.#buffer.subarray(0, this.#end));
          this.#buffer = grown;
        } else if (this.#start === 0) {
          throw new ProtocolError("ERR_READ_ADDRESS", "Handshake message too long");
        }
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const n = await this.#conn.read(this.#buffer.subarray(this.#end));
      if (n === null) {
        throw new ProtocolError("ERR_READ_ADDRESS", "Connection closed during the handshake");
      }
      this.#end += n;
    }
  }

  /**
   * Returns the bytes already read ahead; when there are none, waits up to `waitMs` for the
   * application's first bytes. A read still pending after the wait is kept for `read`.
   */
  async takeBuffered(waitMs: number): Promise<Uint8Array> {
    if (this.#start === this.#end && waitMs > 0) {
      this.#buffer = new Uint8Array(FIRST_READ_SIZE);
      this.#start = this.#end = 0;
      const pending = this.#conn.read(this.#buffer);
      this.#pending = pending;
      if (await settledWithin(pending, waitMs)) await this.#settlePending();
    }
    const bytes = this.#buffer.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    if (!this.#pending) this.#buffer = EMPTY;
    return bytes;
  }

  /**
   * Waits up to `waitMs` for the application's first bytes without taking them: "data" when
   * some are buffered, "eof" when the application closed without a byte, "timeout" otherwise
   * (the read goes on and is kept for `read`). Lets an inbound skip dialling for a client that
   * is already gone, as scanners and a backlog of abandoned connections are.
   */
  async waitForFirstBytes(waitMs: number): Promise<"data" | "eof" | "timeout"> {
    if (this.#start < this.#end) return "data";
    if (this.#eof) return "eof";
    if (!this.#pending) {
      if (this.#buffer.length === 0) this.#buffer = new Uint8Array(FIRST_READ_SIZE);
      this.#start = this.#end = 0;
      this.#pending = this.#conn.read(this.#buffer);
    }
    if (!await settledWithin(this.#pending, waitMs)) return "timeout";
    const n = await this.#settlePending();
    if (n === null) {
      this.#eof = true;
      return "eof";
    }
    return "data";
  }

  /**
   * Puts `bytes` back in front of what is buffered: the part of a read that belongs to the next
   * message (after an HTTP body whose end only the bytes themselves tell).
   */
  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#pending) throw new Error("Cannot unread while a read is pending");
    const rest = this.#buffer.subarray(this.#start, this.#end);
    const joined = new Uint8Array(bytes.length + rest.length);
    joined.set(bytes);
    joined.set(rest, bytes.length);
    this.#buffer = joined;
    this.#start = 0;
    this.#end = joined.length;
  }

  /**
   * Not an async function: once the buffered bytes are gone it is the connection's own read,
   * with no frame of ours waiting on it (the relay's reads wait most of a session's life).
   */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#eof && this.#start === this.#end) return Promise.resolve(null);
    if (this.#pending) return this.#readAfterPending(p);
    if (this.#start < this.#end) return Promise.resolve(this.#take(p));
    return this.#conn.read(p);
  }

  async #readAfterPending(p: Uint8Array): Promise<number | null> {
    const n = await this.#settlePending();
    if (n === null) return null;
    return this.#start < this.#end ? this.#take(p) : await this.#conn.read(p);
  }

  /** Copies buffered bytes into `p`; the buffer goes once it is empty. */
  #take(p: Uint8Array): number {
    const n = Math.min(p.length, this.#end - this.#start);
    p.set(this.#buffer.subarray(this.#start, this.#start + n));
    this.#start += n;
    if (this.#start === this.#end) this.#buffer = EMPTY;
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    // Quietly, and remembered: the accept loop closes the connection again at the end.
    closeQuietly(this.#conn);
  }

  async #settlePending(): Promise<number | null> {
    const pending = this.#pending!;
    this.#pending = undefined;
    const n = await pending;
    if (n !== null) this.#end = this.#start + n;
    return n;
  }
}
