import { assertEquals, assertOk } from "../_assert.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import type { Duplex } from "../../relay/io.ts";
import { relay, SMALL_RELAY_BUFFER_SIZE } from "../../relay/pipe.ts";

/** Concatenates byte arrays (test-side helper, independent of the code under test). */
function joined(parts: Uint8Array[]): number[] {
  return parts.flatMap((part) => [...part]);
}

/** A scripted in-memory side: `reads` are returned in order, then end of stream. */
class ScriptedSide implements Duplex {
  readonly written: Uint8Array[] = [];
  readCalls = 0;
  writeClosed = false;
  closed = false;
  #next = 0;

  constructor(readonly reads: (Uint8Array | Error)[], readonly writeError?: Error) {}

  read(p: Uint8Array): Promise<number | null> {
    this.readCalls++;
    const item = this.reads[this.#next++];
    if (item === undefined) return Promise.resolve(null);
    if (item instanceof Error) return Promise.reject(item);
    p.set(item);
    return Promise.resolve(item.length);
  }

  write(p: Uint8Array): Promise<number> {
    if (this.writeError) return Promise.reject(this.writeError);
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  closeWrite(): Promise<void> {
    this.writeClosed = true;
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * A side that lends its own buffer (`readView`), and reuses that buffer for the next read, the
 * way a Shadowsocks stream decrypts into its inbox: a relay that kept a view past the next read
 * would see it overwritten.
 */
class LendingSide extends ScriptedSide {
  readonly #lent = new Uint8Array(64);
  #nextView = 0;

  readView(): Promise<Uint8Array | null> {
    const item = this.reads[this.#nextView++];
    if (item === undefined) return Promise.resolve(null);
    if (item instanceof Error) return Promise.reject(item);
    this.#lent.set(item);
    return Promise.resolve(this.#lent.subarray(0, item.length));
  }
}

const bytes = (...values: number[]) => Uint8Array.from(values);

Deno.test("relay() writes a lending side's views on without calling its read()", async () => {
  const client = new LendingSide([bytes(1, 2, 3), bytes(4), bytes(5, 6)]);
  const target = new ScriptedSide([bytes(9, 8), bytes(7)]);
  const counted: Record<string, number> = { uplink: 0, downlink: 0 };
  const status = await relay(client, target, {
    idleTimeoutMs: 10_000,
    onBytes: (direction, count) => counted[direction]! += count,
  });
  assertEquals(status, "OK");
  assertEquals(joined(target.written), [1, 2, 3, 4, 5, 6]);
  assertEquals(joined(client.written), [9, 8, 7]);
  assertEquals(client.readCalls, 0);
  assertEquals(counted, { uplink: 6, downlink: 3 });
  assertOk(client.writeClosed && target.writeClosed, "both ends get end-of-stream");
  assertOk(client.closed && target.closed, "both ends are closed at the end");
});

Deno.test("relay() copies each view before the lender reuses its buffer", async () => {
  // Every view comes from the same 64-byte buffer; the writes must still carry each payload.
  const payloads = Array.from({ length: 20 }, (_, i) => bytes(i, i, i));
  const client = new LendingSide(payloads);
  const target = new ScriptedSide([]);
  await relay(client, target, { idleTimeoutMs: 10_000 });
  assertEquals(joined(target.written), joined(payloads));
});

Deno.test("relay() reads a plain side into its own buffer, growing it for full reads", async () => {
  const big = new Uint8Array(5000).map((_, i) => i & 0xff);
  const small = new Uint8Array(SMALL_RELAY_BUFFER_SIZE).fill(7);
  // A full small read switches to the large buffer; the 5000-byte read then fits in one call.
  const client = new ScriptedSide([small, big, bytes(1)]);
  const target = new ScriptedSide([]);
  const status = await relay(client, target, { idleTimeoutMs: 10_000 });
  assertEquals(status, "OK");
  assertEquals(target.written.map((w) => w.length), [SMALL_RELAY_BUFFER_SIZE, 5000, 1]);
  assertEquals(joined(target.written), [...small, ...big, 1]);
});

Deno.test("relay() reports a lender's ProtocolError by its code", async () => {
  const client = new LendingSide([bytes(1), new ProtocolError("ERR_CIPHER", "bad tag")]);
  const target = new ScriptedSide([bytes(2)]);
  assertEquals(await relay(client, target, { idleTimeoutMs: 10_000 }), "ERR_CIPHER");
  assertOk(client.closed && target.closed);
});

Deno.test("relay() blames the side whose write failed", async () => {
  const client = new ScriptedSide([bytes(1)]);
  const target = new ScriptedSide([], new Deno.errors.BrokenPipe("gone"));
  assertEquals(await relay(client, target, { idleTimeoutMs: 10_000 }), "ERR_RELAY_TARGET");
});
