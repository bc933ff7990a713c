/**
 * Every fuzz target, in report order: wire parsers, TCP first flights, UDP packets, text
 * formats. `deno task fuzz --target NAME` picks one; `--list` prints them.
 * @module
 */
import { STREAM_TARGETS } from "./_stream_targets.ts";
import { TEXT_TARGETS } from "./_text_targets.ts";
import { UDP_TARGETS } from "./_udp_targets.ts";
import { WIRE_TARGETS } from "./_wire_targets.ts";
import type { FuzzTarget } from "./target.ts";

export const TARGETS: readonly FuzzTarget[] = [
  ...WIRE_TARGETS,
  ...STREAM_TARGETS,
  ...UDP_TARGETS,
  ...TEXT_TARGETS,
];

/** The target called `name`, or `undefined`. */
export function findTarget(name: string): FuzzTarget | undefined {
  return TARGETS.find((target) => target.name === name);
}
