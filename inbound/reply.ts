/**
 * Sending an error reply to an application that may already be gone: a closed or reset
 * connection changes nothing about how the session ends, so those errors are dropped here.
 * @module
 */
import { type Duplex, writeAll } from "../relay/io.ts";

export async function sendQuietly(conn: Pick<Duplex, "write">, bytes: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, bytes);
  } catch (error) {
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}
