/**
 * What the process costs now, for the metrics endpoint: the `process_*` families Prometheus
 * clients export by default (outline-ss-server's registry carries them too, NOTES-2 §19.1), read
 * where Deno lets a process read itself without `--allow-all` (`/proc/self` needs it): CPU time
 * from `getrusage`, resident memory from `Deno.memoryUsage`, the file limit through
 * relay/file_limit.ts. The open-descriptor count has no such way and is left out.
 * @module
 */
import { cpuUsage } from "node:process";
import { readFileLimit } from "../relay/file_limit.ts";

export interface ProcessSample {
  /** User and system CPU of every thread so far, seconds. */
  readonly cpuSeconds: number;
  /** Resident set size, bytes. */
  readonly residentBytes: number;
  /** The soft file limit; undefined when unreadable, Infinity when unlimited. */
  readonly maxFds: number | undefined;
  /** When the process started, Unix seconds. */
  readonly startTimeSeconds: number;
  /** Isolates accepting on the TCP ports now (service/workers.ts). */
  readonly isolates: number;
}

/** Unix seconds when the process (its main isolate) started. */
const STARTED = performance.timeOrigin / 1000;

/** The file limit, read once: it changes only at start (`nofile`), before metrics are served. */
let maxFds: number | undefined | null = null;

/** User and system CPU of every thread so far, ms (`getrusage`: no permission needed). */
export function processCpuMs(): number {
  const { user, system } = cpuUsage();
  return (user + system) / 1000;
}

export function readProcessSample(isolates: number): ProcessSample {
  if (maxFds === null) maxFds = readFileLimit()?.soft;
  return {
    cpuSeconds: processCpuMs() / 1000,
    residentBytes: Deno.memoryUsage().rss,
    maxFds,
    startTimeSeconds: STARTED,
    isolates,
  };
}
