/**
 * A Worker for tests/protocol/shared_replay_store_test.ts: opens the store from the buffer it is
 * posted and runs the operations it is asked for, answering with what the store said.
 *
 * - `{ buffer }` → `"ready"`
 * - `{ op: "filter" | "pool", salts: Uint8Array[], gate? }` → one result per salt. With `gate`
 *   (an Int32Array over shared memory), it first waits until word 0 turns 1, so two workers
 *   start the same salts at the same moment.
 */
import { SharedReplayStore } from "../../protocol/shared_replay_store.ts";

interface Job {
  op: "filter" | "pool";
  salts: Uint8Array[];
  gate?: Int32Array;
}

/** The worker's global scope, as far as this file uses it (the main lib types `self` as Window). */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<{ buffer: SharedArrayBuffer } | Job>) => void) | null;
  postMessage(message: unknown): void;
};

let store: SharedReplayStore | undefined;

scope.onmessage = (event: MessageEvent<{ buffer: SharedArrayBuffer } | Job>) => {
  const data = event.data;
  if ("buffer" in data) {
    store = new SharedReplayStore({ buffer: data.buffer });
    scope.postMessage("ready");
    return;
  }
  if (data.gate) {
    Atomics.add(data.gate, 1, 1);
    while (Atomics.load(data.gate, 0) === 0) Atomics.wait(data.gate, 0, 0, 10);
  }
  const results = data.op === "filter"
    ? data.salts.map((salt) => store!.filter.checkAndAdd(salt))
    : data.salts.map((salt) => store!.pool.checkAndAdd(salt));
  scope.postMessage(results);
};
