/**
 * The process's open-file limit, which caps how many sessions it can hold: a TCP session needs
 * two descriptors (the client's connection and the target's or server's), a UDP association one
 * per IP family it sends to, and the process itself keeps a few dozen (runtime, listeners, log).
 * Deno has no getrlimit: this reads Linux's `/proc/self/limits`, or calls libc's getrlimit
 * through FFI; elsewhere it is unknown.
 * @module
 */

/** Descriptors each kind of session holds. */
export const DESCRIPTORS_PER_TCP_SESSION = 2;
export const DESCRIPTORS_PER_UDP_ASSOCIATION = 1;
/** Descriptors the runtime and the service's own sockets take before any session. */
export const DESCRIPTORS_RESERVED = 32;

export interface FileLimit {
  /** The limit in force (`ulimit -n`); Infinity when unlimited. */
  readonly soft: number;
  /** How far the process may raise it. */
  readonly hard: number;
}

/** Parses the "Max open files" row of a `/proc/<pid>/limits` text. */
export function parseFileLimit(text: string): FileLimit | undefined {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) return undefined;
  const value = (s: string) => (s === "unlimited" ? Infinity : Number(s));
  const soft = value(match[1]!);
  const hard = value(match[2]!);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

/**
 * This process's file limit, or undefined where it cannot be read. Deno asks for --allow-all to
 * read `/proc/self/limits`, so with narrower permissions (the tasks') `getrlimit` is called
 * through FFI (--allow-ffi) instead.
 */
export function readFileLimit(): FileLimit | undefined {
  try {
    return parseFileLimit(Deno.readTextFileSync("/proc/self/limits"));
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable ||
        error instanceof Deno.errors.PermissionDenied)
    ) throw error;
  }
  return getrlimitNofile();
}

/** Linux's RLIMIT_NOFILE; `struct rlimit` is two 64-bit unsigned integers there. */
const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

function getrlimitNofile(): FileLimit | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    // No FFI permission or no glibc: the limit is simply unknown, which costs one log line.
    return undefined;
  }
  try {
    const limits = new BigUint64Array(2);
    if (libc.symbols.getrlimit(RLIMIT_NOFILE, new Uint8Array(limits.buffer)) !== 0) {
      return undefined;
    }
    const value = (n: bigint) => (n === RLIM_INFINITY ? Infinity : Number(n));
    return { soft: value(limits[0]!), hard: value(limits[1]!) };
  } finally {
    libc.close();
  }
}

/** One phrase for log lines: the limit and about how many TCP sessions it allows. */
export function describeFileLimit(limit: FileLimit | undefined): string {
  if (!limit) return "file limit unknown";
  if (limit.soft === Infinity) return "no file limit";
  const sessions = Math.max(
    0,
    Math.floor((limit.soft - DESCRIPTORS_RESERVED) / DESCRIPTORS_PER_TCP_SESSION),
  );
  return `file limit ${limit.soft} (hard ${limit.hard}): about ${sessions} TCP sessions at once`;
}
