/**
 * A prober that keeps sending junk until the server closes, for the handshake-deadline tests.
 * What it records tells "drains until the deadline" apart from its two failures: closing at
 * once (the close comes long before the deadline) and holding the connection without reading
 * (the bulk cannot all be written: loopback buffers take a few MiB, the bulk is bigger).
 * @module
 */
import { writeAll } from "../../relay/io.ts";
import { assertEquals, assertOk } from "../_assert.ts";

/** The handshake deadline the tests give the server, in ms. */
export const DEADLINE_MS = 500;
/** Timer slop allowed below the deadline (the server's timer starts after our connect). */
const EARLY_SLOP_MS = 20;
/** A generous bound on how late the close may come on a loaded machine. */
const LATE_BOUND_MS = 3000;

/** More than a non-reading peer's receive window plus our send buffer can take in (~4.2 MiB). */
const BULK_BYTES = 16 * 1024 * 1024;
const BULK_PIECE = 64 * 1024;
/** After the bulk: one small write this often, so writes go on right up to the close. */
const TRICKLE_BYTES = 512;
const TRICKLE_INTERVAL_MS = 20;

export interface JunkRun {
  /** When the bulk was all accepted, ms after connecting (undefined: a write failed first). */
  bulkDoneMs: number | undefined;
  /** Bytes our writes got in before the first failed one. */
  accepted: number;
  /** When our read saw the close (end of stream or reset), ms after connecting. */
  closedMs: number;
  /** How the close looked to us. */
  ending: "eof" | "reset";
  /** When a write first failed, ms after connecting (undefined: none did). */
  firstWriteErrorMs: number | undefined;
  /** When the last write that succeeded completed, ms after connecting. */
  lastWriteOkMs: number;
  /** Bytes the server sent back. */
  answer: number;
}

/**
 * Connects to `port` and writes junk (16 MiB at once, then 512 bytes every 20 ms) until the
 * server closes. Throws when the server has not closed after `limitMs`.
 */
export async function sendJunkUntilClosed(port: number, limitMs: number): Promise<JunkRun> {
  const started = performance.now();
  const since = () => performance.now() - started;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const run: JunkRun = {
    bulkDoneMs: undefined,
    accepted: 0,
    closedMs: NaN,
    ending: "eof",
    firstWriteErrorMs: undefined,
    lastWriteOkMs: 0,
    answer: 0,
  };
  const closed = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        run.answer += n;
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      run.ending = "reset";
    }
    run.closedMs = since();
  })();
  let isClosed = false;
  closed.finally(() => isClosed = true).catch(() => {});

  /** Writes `bytes`; false once the connection is gone (reset or broken pipe). */
  const write = async (bytes: Uint8Array) => {
    try {
      await writeAll(conn, bytes);
    } catch (error) {
      const gone = error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe;
      if (!gone) throw error;
      run.firstWriteErrorMs = since();
      return false;
    }
    run.accepted += bytes.length;
    run.lastWriteOkMs = since();
    return true;
  };

  // Every wait below ends by `limitMs`: closing our side fails whatever write or read is pending.
  let timedOut = false;
  const guard = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, limitMs);
  try {
    // Random bytes up front so nothing authenticates; zeros after that are just as much junk.
    const bulk = crypto.getRandomValues(new Uint8Array(BULK_PIECE));
    const zeros = new Uint8Array(BULK_PIECE);
    let open = true;
    for (let sent = 0; open && sent < BULK_BYTES; sent += BULK_PIECE) {
      open = await write(sent === 0 ? bulk : zeros);
    }
    if (open) run.bulkDoneMs = since();
    const trickle = new Uint8Array(TRICKLE_BYTES);
    while (open && !isClosed) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const pause = new Promise((resolve) => timer = setTimeout(resolve, TRICKLE_INTERVAL_MS));
      await Promise.race([closed, pause]);
      clearTimeout(timer);
      if (!isClosed) open = await write(trickle);
    }
    await closed;
    return run;
  } catch (error) {
    if (timedOut) {
      throw new Error(`Server still open after ${limitMs} ms of junk`, { cause: error });
    }
    throw error;
  } finally {
    clearTimeout(guard);
  }
}

/**
 * What a server that drains a failed handshake until its `DEADLINE_MS` deadline guarantees:
 * no answer, every write accepted until the deadline (the 16 MiB bulk included, so it kept
 * reading), and the close at the deadline, not before and not much after.
 */
export function assertDrainedToDeadline(run: JunkRun): void {
  const figures = JSON.stringify(run);
  assertEquals(run.answer, 0, `the server answered: ${figures}`);
  assertOk(
    run.closedMs >= DEADLINE_MS - EARLY_SLOP_MS,
    `closed after ${run.closedMs.toFixed(0)} ms, before the ${DEADLINE_MS} ms deadline: ${figures}`,
  );
  assertOk(
    run.bulkDoneMs !== undefined && run.bulkDoneMs < run.closedMs,
    `the server stopped reading: ${run.accepted} of 16 MiB accepted before the close: ${figures}`,
  );
  assertOk(
    run.firstWriteErrorMs === undefined || run.firstWriteErrorMs >= DEADLINE_MS - EARLY_SLOP_MS,
    `a write failed before the deadline: ${figures}`,
  );
  assertOk(
    run.closedMs <= DEADLINE_MS + LATE_BOUND_MS,
    `closed only after ${run.closedMs.toFixed(0)} ms: ${figures}`,
  );
}
