/**
 * The worker side of fuzz/supervisor.ts: runs one job at a time and beats a shared counter
 * before every call of the parser, so the supervisor can tell a hang from a slow run.
 *
 * Shared slots: 0 counts parser calls, 1 holds the current iteration minus `from`.
 * @module
 */
import { type FuzzOptions, fuzzTarget } from "./engine.ts";
import type { FuzzTarget } from "./target.ts";

/** One job: the target's name, the module that lists it, and the engine's options. */
export interface WorkerJob {
  readonly name: string;
  readonly module: string;
  readonly options: Omit<FuzzOptions, "heartbeat">;
  readonly shared: SharedArrayBuffer;
}

const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent<WorkerJob>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = async (event) => {
  const { name, module, options, shared } = event.data;
  const slots = new Int32Array(shared);
  const from = options.from ?? 0;
  const { TARGETS } = await import(module) as { TARGETS: readonly FuzzTarget[] };
  const target = TARGETS.find((item) => item.name === name);
  if (target === undefined) {
    scope.postMessage({ error: `Unknown fuzz target "${name}"` });
    return;
  }
  const report = await fuzzTarget(target, {
    ...options,
    heartbeat(iteration) {
      Atomics.add(slots, 0, 1);
      Atomics.store(slots, 1, iteration - from);
    },
  });
  scope.postMessage({ report });
};
