/**
 * The memory side of "bounded allocation", sampled between batches of inputs (cheap: one
 * `Deno.memoryUsage()` per 1024 inputs):
 *
 * - heap plus external memory over 512 MiB, or an RSS over 2 GiB, at any sample;
 * - with `--v8-flags=--expose-gc`: JS heap still held after full GCs at the end, beyond 64 MiB
 *   over the start (a cache or leak fed by input);
 * - with `--expose-gc`: steady RSS growth, after full GCs, over the last three quarters of the
 *   run: more than 16 MiB in each quarter and more than 128 MiB in all. Native memory (cipher
 *   contexts, node:crypto handles) is invisible to the heap numbers. Starting a quarter in
 *   leaves out warm-up, and asking for growth in every quarter leaves out the one-time steps
 *   of the allocator's high-water mark, while a per-input leak keeps growing (1 KiB per input
 *   is 250 MiB per quarter of a million-input run).
 *
 * Each sample also yields to the event loop, as a server does between connections:
 * `FinalizationRegistry` callbacks (which free OpenSSL contexts) only run there.
 * @module
 */

const HEAP_LIMIT = 512 * 1024 * 1024;
const RSS_LIMIT = 2 * 1024 * 1024 * 1024;
const RETAINED_LIMIT = 64 * 1024 * 1024;
const RSS_GROWTH_LIMIT = 128 * 1024 * 1024;
const RSS_QUARTER_GROWTH = 16 * 1024 * 1024;

/** What the watch saw over one run. */
export interface MemoryStats {
  /** Largest heap plus external memory sampled, in MiB. */
  readonly peakMemoryMiB: number;
  /** Largest resident set of the whole process sampled, in MiB (native memory included). */
  readonly peakRssMiB: number;
  /** Heap growth across the run after full GCs (with `gc` exposed). */
  readonly retainedMiB?: number;
  /** RSS growth from a quarter of the run to its end, after full GCs (with `gc` exposed). */
  readonly rssGrowthMiB?: number;
}

/** Samples memory during one run; a state with a lifecycle, hence a class. */
export class MemoryWatch {
  readonly #gc = (globalThis as { gc?: () => void }).gc;
  #heapAtStart = 0;
  /** RSS after full GCs at a quarter, half and three quarters of the run. */
  readonly #rssAt: number[] = [];
  #peakMemory = 0;
  #peakRss = 0;

  /** Call before the first input. */
  async start(): Promise<void> {
    await this.#collect();
    this.#heapAtStart = Deno.memoryUsage().heapUsed;
  }

  /** Call every 1024 inputs; returns a finding when a limit is passed even after a GC. */
  async sample(): Promise<string | undefined> {
    await tick();
    const usage = this.#observe();
    if (usage.heapUsed + usage.external <= HEAP_LIMIT && usage.rss <= RSS_LIMIT) return undefined;
    await this.#collect();
    const after = Deno.memoryUsage();
    if (after.heapUsed + after.external <= HEAP_LIMIT && after.rss <= RSS_LIMIT) return undefined;
    return `Heap and external memory at ${mib(after.heapUsed + after.external)} MiB, RSS at ${
      mib(after.rss)
    } MiB, after full GCs`;
  }

  /** Call when a quarter, half and three quarters of the inputs are done. */
  async checkpoint(): Promise<void> {
    if (this.#gc === undefined) return;
    await this.#collect();
    this.#rssAt.push(Deno.memoryUsage().rss);
  }

  /** Call after the last input: the stats, and the findings of the end-of-run checks. */
  async finish(): Promise<{ stats: MemoryStats; findings: string[] }> {
    this.#observe();
    const peaks = { peakMemoryMiB: mib(this.#peakMemory), peakRssMiB: mib(this.#peakRss) };
    if (this.#gc === undefined) return { stats: peaks, findings: [] };
    await this.#collect();
    const after = Deno.memoryUsage();
    const findings: string[] = [];
    const retained = Math.max(0, after.heapUsed - this.#heapAtStart);
    if (retained > RETAINED_LIMIT) {
      findings.push(`${mib(retained)} MiB of heap still held after the run and full GCs`);
    }
    const rss = [...this.#rssAt, after.rss];
    if (rss.length < 4) return { stats: { ...peaks, retainedMiB: mib(retained) }, findings };
    const growth = Math.max(0, after.rss - rss[0]!);
    const steady = rss.slice(1).every((value, i) => value - rss[i]! > RSS_QUARTER_GROWTH);
    if (steady && growth > RSS_GROWTH_LIMIT) {
      findings.push(
        `RSS grew by ${mib(growth)} MiB over the last three quarters of the run, in every ` +
          `quarter, after full GCs (${rss.map((value) => mib(value)).join(" → ")} MiB): ` +
          `memory outside the JS heap kept per input`,
      );
    }
    return {
      stats: { ...peaks, retainedMiB: mib(retained), rssGrowthMiB: mib(growth) },
      findings,
    };
  }

  #observe(): Deno.MemoryUsage {
    const usage = Deno.memoryUsage();
    this.#peakMemory = Math.max(this.#peakMemory, usage.heapUsed + usage.external);
    this.#peakRss = Math.max(this.#peakRss, usage.rss);
    return usage;
  }

  /** Full GCs with event-loop turns between them, so finalization callbacks run too. */
  async #collect(): Promise<void> {
    if (this.#gc === undefined) return;
    for (let i = 0; i < 2; i++) {
      this.#gc();
      await tick();
    }
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function mib(bytes: number): number {
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}
