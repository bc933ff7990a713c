/**
 * The fuzzer's command line. Runs the targets one after another in a watched worker and prints
 * one line per target; exits 1 when any target failed.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc fuzz/run.ts [--iterations N] [--seed S] [--target a,b]
 *   [--from I] [--time-limit MS] [--hang-seconds S] [--json FILE]
 * deno run -A fuzz/run.ts --target NAME --input HEX     # replay one input, print the outcome
 * deno run -A fuzz/run.ts --list
 * ```
 *
 * `--expose-gc` is optional: with it the report also shows heap still held after the run.
 * @module
 */
import { parseArgs } from "node:util";
import type { TargetReport } from "./engine.ts";
import { fromHex } from "./hex.ts";
import { describe, runOnce } from "./outcome.ts";
import { FuzzSupervisor } from "./supervisor.ts";
import { findTarget, TARGETS } from "./targets.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    iterations: { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    target: { type: "string" },
    from: { type: "string", default: "0" },
    "time-limit": { type: "string", default: "250" },
    "hang-seconds": { type: "string", default: "30" },
    input: { type: "string" },
    json: { type: "string" },
    list: { type: "boolean", default: false },
  },
});

function integer(name: string, text: string): number {
  const value = Number(text.replaceAll("_", ""));
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`Invalid --${name} "${text}": expected a non-negative integer`);
    Deno.exit(2);
  }
  return value;
}

if (values.list) {
  for (const target of TARGETS) console.log(`${target.name.padEnd(28)} ${target.parser}`);
  Deno.exit(0);
}

const names = values.target?.split(",").map((name) => name.trim()) ?? TARGETS.map((t) => t.name);
for (const name of names) {
  if (!findTarget(name)) {
    console.error(
      `Unknown target "${name}": expected one of ${TARGETS.map((t) => t.name).join(", ")}`,
    );
    Deno.exit(2);
  }
}

if (values.input !== undefined) Deno.exit(replay(names, values.input));

const options = {
  iterations: integer("iterations", values.iterations),
  seed: integer("seed", values.seed),
  from: integer("from", values.from),
  timeLimitMs: integer("time-limit", values["time-limit"]),
};
const hangMs = integer("hang-seconds", values["hang-seconds"]) * 1000;
console.log(
  `Fuzzing ${names.length} targets, ${options.iterations.toLocaleString("en")} inputs each, ` +
    `seed ${options.seed}, from ${options.from}, ${options.timeLimitMs} ms per input at most`,
);
console.log(header());
const reports: TargetReport[] = [];
const started = performance.now();
{
  using supervisor = new FuzzSupervisor({ hangMs });
  for (const name of names) {
    let lastShown = performance.now();
    const report = await supervisor.run(name, {
      ...options,
      onProgress(done) {
        if (performance.now() - lastShown < 30_000) return;
        lastShown = performance.now();
        console.error(`  ${name}: ${done.toLocaleString("en")} inputs so far`);
      },
    });
    reports.push(report);
    console.log(row(report));
    for (const line of failureLines(report)) console.log(line);
  }
}
const failed = reports.filter((report) => report.failureCount > 0 || report.seedsRefused.length);
const total = reports.reduce((sum, report) => sum + report.inputs, 0);
console.log(
  `${reports.length} targets, ${total.toLocaleString("en")} inputs, ${failed.length} failed, ` +
    `${((performance.now() - started) / 1000).toFixed(0)} s`,
);
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(reports, null, 2) + "\n");
Deno.exit(failed.length > 0 ? 1 : 0);

function header(): string {
  return [
    "target".padEnd(26),
    "inputs".padStart(10),
    "accepted".padStart(10),
    "typed".padStart(10),
    "max ms".padStart(8),
    "at iter".padStart(9),
    "µs/in".padStart(7),
    "out KiB".padStart(8),
    "peak MiB".padStart(9),
    "RSS MiB".padStart(8),
    "kept MiB".padStart(9),
    "RSS+ MiB".padStart(9),
    "time s".padStart(7),
    "  result",
  ].join("");
}

function row(report: TargetReport): string {
  const perInput = report.inputs ? (report.totalMs * 1000) / report.inputs : 0;
  const result = report.failureCount > 0
    ? `FAIL (${report.failureCount})`
    : report.seedsRefused.length > 0
    ? "SEEDS REFUSED"
    : "ok";
  return [
    report.name.padEnd(26),
    report.inputs.toLocaleString("en").padStart(10),
    report.accepted.toLocaleString("en").padStart(10),
    report.typed.toLocaleString("en").padStart(10),
    report.maxMs.toFixed(1).padStart(8),
    String(report.slowestIteration).padStart(9),
    perInput.toFixed(1).padStart(7),
    (report.maxOutputBytes / 1024).toFixed(1).padStart(8),
    report.peakMemoryMiB.toFixed(0).padStart(9),
    report.peakRssMiB.toFixed(0).padStart(8),
    (report.retainedMiB === undefined ? "-" : report.retainedMiB.toFixed(1)).padStart(9),
    (report.rssGrowthMiB === undefined ? "-" : report.rssGrowthMiB.toFixed(0)).padStart(9),
    (report.totalMs / 1000).toFixed(1).padStart(7),
    `  ${result}`,
  ].join("");
}

function failureLines(report: TargetReport): string[] {
  const lines = report.seedsRefused.map((error) => `  seed refused: ${error}`);
  for (const failure of report.failures) {
    lines.push(`  FAIL ${failure.kind}: ${failure.error} (${failure.count} inputs)`);
    if (failure.input === "") {
      // A finding about the whole run (memory kept across inputs): the run reproduces it.
      lines.push(
        `    whole run: deno run -A --v8-flags=--expose-gc fuzz/run.ts --target ${report.name} ` +
          `--seed ${report.seed} --from ${report.from} --iterations ${report.inputs}`,
      );
      continue;
    }
    lines.push(
      `    iteration ${failure.iteration}: deno run -A fuzz/run.ts --target ${report.name} ` +
        `--seed ${report.seed} --from ${failure.iteration} --iterations 1`,
      `    input (${failure.input.length / 2} bytes): ${shortHex(failure.input)}`,
    );
    if (failure.minimal !== undefined) {
      lines.push(
        `    minimal (${failure.minimal.length / 2} bytes): ${failure.minimal}`,
        `    replay: deno run -A fuzz/run.ts --target ${report.name} --input ${failure.minimal}`,
      );
    }
    if (failure.stack) lines.push(...failure.stack.split("\n").map((line) => `    | ${line}`));
  }
  return lines;
}

/** Hex of up to 512 bytes; a longer input is made again with its seed and iteration. */
function shortHex(hex: string): string {
  return hex.length <= 1024 ? hex : `${hex.slice(0, 1024)}… (cut: use the command above or --json)`;
}

/** Runs one input in this process and prints what the parser did; 1 for a finding. */
function replay(names: readonly string[], hex: string): number {
  if (names.length !== 1) {
    console.error("--input needs exactly one --target");
    return 2;
  }
  const target = findTarget(names[0]!)!;
  const outcome = runOnce(target, fromHex(hex));
  if (outcome.kind === "accepted") {
    console.log(`accepted: ${Deno.inspect(outcome.value, { depth: 4 })}`);
    return 0;
  }
  if (outcome.kind === "typed") {
    console.log(`typed: ${describe(outcome.error)}`);
    return 0;
  }
  const error = outcome.error;
  console.log(
    `${outcome.kind.toUpperCase()}: ${error instanceof Error ? error.stack : String(error)}`,
  );
  return 1;
}
