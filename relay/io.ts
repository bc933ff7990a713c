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

/** Writes every byte of `data`. */
export async function writeAll(writer: Pick<Duplex, "write">, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await writer.write(data.subarray(written));
  }
}

/**
 * Closes a stream that may already be closed. Deno throws `BadResource` on a second close;
 * that case is expected here, anything else is rethrown.
 */
export function closeQuietly(stream: Pick<Duplex, "close">): void {
  try {
    stream.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

export { concatBytes } from "../crypto/bytes.ts";
