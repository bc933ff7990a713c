/**
 * When a server left at its default `workers` adds an isolate. Each isolate costs a V8 heap of
 * its own: about 17 MiB at rest and several more of garbage headroom under load (README, "Several
 * cores"), while on the 2-core machines measured a second isolate gains 6–23 % of throughput and
 * nothing in connection rate. So the server starts with one and adds the next, up to one per core,
 * only once the process has been busy for a while: a light server (most of them) keeps the memory,
 * a busy one gets the cores.
 *
 * Busy is the process's CPU time (every thread: V8's helpers too) over wall time, in cores, against
 * `busyCores` per running isolate: one isolate that keeps its core three-quarters busy for three
 * seconds in a row is enough. Isolates are never removed: sessions live in the isolate that
 * accepted them, and an idle isolate's heap shrinks on its own.
 * @module
 */

/** What makes a pool add an isolate. */
export interface ScalingOptions {
  /** Process CPU, in cores per running isolate, that counts as busy. Default 0.75. */
  busyCores?: number;
  /** Busy samples in a row before an isolate is added. Default 3. */
  samples?: number;
  /** Time between samples. Default 1000 ms. */
  sampleMs?: number;
}

export const DEFAULT_SCALING: Required<ScalingOptions> = {
  busyCores: 0.75,
  samples: 3,
  sampleMs: 1000,
};

/** The decision alone, fed one sample at a time (pure: no clock, no process). */
export class ScaleUpPolicy {
  readonly #busyCores: number;
  readonly #samples: number;
  #busyInARow = 0;

  constructor(options: ScalingOptions = {}) {
    this.#busyCores = options.busyCores ?? DEFAULT_SCALING.busyCores;
    this.#samples = options.samples ?? DEFAULT_SCALING.samples;
  }

  /**
   * One sample: the process used `cpuMs` of CPU over `wallMs` while `isolates` ran. True when an
   * isolate should be added now (the count of busy samples then starts again).
   */
  sample(cpuMs: number, wallMs: number, isolates: number): boolean {
    const busy = wallMs > 0 && cpuMs / wallMs >= this.#busyCores * isolates;
    this.#busyInARow = busy ? this.#busyInARow + 1 : 0;
    if (this.#busyInARow < this.#samples) return false;
    this.#busyInARow = 0;
    return true;
  }
}
