/**
 * A leveled logger writing one line per event to stderr. Secrets never reach it: callers log
 * addresses and statuses, never passwords or keys.
 * @module
 */

export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

export interface Logger {
  readonly level: LogLevel;
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  trace(message: string): void;
  /** True when messages at `level` are written (to skip building costly trace lines). */
  enabled(level: LogLevel): boolean;
}

/** A logger that writes `<ISO time> <LEVEL> <message>` lines at `level` and above. */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => console.error(line),
): Logger {
  const enabled = (wanted: LogLevel) => RANK[wanted] <= RANK[level];
  const at = (wanted: LogLevel) => (message: string) => {
    if (enabled(wanted)) write(`${new Date().toISOString()} ${wanted.toUpperCase()} ${message}`);
  };
  return {
    level,
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    trace: at("trace"),
    enabled,
  };
}

/** A logger that drops everything; the default for library use and tests. */
export const silentLogger: Logger = createLogger("error", () => {});
