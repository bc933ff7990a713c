/**
 * The only I/O loops outside the pipe: partial reads and writes are normal, and these helpers
 * are where they are handled.
 * @module
 */

/** The byte-stream shape every inbound, outbound and encrypted stream exposes to the relay. */
export interface Duplex {
  /** Reads into `p`; resolves to the count read, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Optional: the next bytes in a buffer the stream owns, valid until its next read; null at end
   * of stream. A stream that decrypts into its own buffer offers this so the relay can write
   * them on without a buffer and a copy of its own.
   */
  readView?(): Promise<Uint8Array | null>;
  /** Writes some of `p`; resolves to the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Sends end-of-stream to the peer (TCP FIN) while reads go on. */
  closeWrite(): Promise<void>;
  close(): void;
}

/** Thrown when a stream ends in the middle of a unit that `readExact` needs whole. */
export class UnexpectedEofError extends Error {
  constructor(expected: number, got: number) {
    super(`Stream ended early: expected ${expected} bytes, got ${got}`);
    this.name = "UnexpectedEofError";
  }
}

/** Fills `buffer` completely; null when the stream ends before the first byte. */
export async function readExact(
  reader: Pick<Duplex, "read">,
  buffer: Uint8Array,
): Promise<Uint8Array | null> {
  let filled = 0;
  while (filled < buffer.length) {
    const n = await reader.read(buffer.subarray(filled));
    if (n === null) {
      if (filled === 0) return null;
      throw new UnexpectedEofError(buffer.length, filled);
    }
    filled += n;
  }
  return buffer;
}

/**
 * Writes every byte of `data`. Not an async function: a write that takes everything at once
 * (almost all of them) costs one `then` instead of a suspended frame (bench/throughput.ts,
 * connection setup and idle memory).
 */
export function writeAll(writer: Pick<Duplex, "write">, data: Uint8Array): Promise<void> {
  if (data.length === 0) return Promise.resolve();
  let first: Promise<number>;
  try {
    first = writer.write(data);
  } catch (error) {
    // As from an async function: a failure is a rejection, never a throw.
    return Promise.reject(error);
  }
  return first.then((n) => n < data.length ? writeRest(writer, data, n) : undefined);
}

async function writeRest(
  writer: Pick<Duplex, "write">,
  data: Uint8Array,
  written: number,
): Promise<void> {
  while (written < data.length) {
    written += await writer.write(data.subarray(written));
  }
}

/**
 * Streams `closeQuietly` has closed. Sessions close their client connection twice (the relay,
 * then the accept loop, which cannot tell), and Deno's second close throws `BadResource`: an
 * error with a stack trace, which cost more than the rest of the close (bench/throughput.ts,
 * connection setup). Weak: an entry goes with its stream.
 */
const closed = new WeakSet<object>();

/**
 * Turns Nagle's algorithm off when `noDelay` asks for it. A new socket (connected or accepted)
 * has it on, and Deno leaves it so: setting it on again was a system call per socket that
 * changed nothing (about 8 µs of the event loop each in a CPU profile of sequential setups; too
 * small for the setup benchmark to show).
 */
export function applyNoDelay(conn: Deno.TcpConn, noDelay: boolean): void {
  if (noDelay) conn.setNoDelay(true);
}

/**
 * Closes a stream that may already be closed. Deno throws `BadResource` on a second close;
 * that case is expected here, anything else is rethrown. A stream this already closed is not
 * closed again.
 */
export function closeQuietly(stream: Pick<Duplex, "close">): void {
  if (closed.has(stream)) return;
  try {
    stream.close();
    closed.add(stream);
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

export { concatBytes } from "../crypto/bytes.ts";
