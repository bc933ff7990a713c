import { corpusOf, inputFor } from "../fuzz/corpus.ts";
import { type Failure, fuzzTarget } from "../fuzz/engine.ts";
import { fromHex, toHex } from "../fuzz/hex.ts";
import { runOnce } from "../fuzz/outcome.ts";
import { FuzzSupervisor } from "../fuzz/supervisor.ts";
import { TARGETS } from "../fuzz/targets.ts";
import { TARGETS as SELFTEST_TARGETS, TRIGGER } from "../fuzz/_selftest_targets.ts";
import { assertEquals, assertOk } from "./_assert.ts";

/** A few thousand per target: about 10 s for all of them on a 2-core machine. */
const ITERATIONS = 3000;
/** Generous for a loaded 2-core machine; a slow input is timed three times before it fails. */
const TIME_LIMIT_MS = 250;

function described(failure: Failure): string {
  return `${failure.kind} at iteration ${failure.iteration}: ${failure.error}\n` +
    `  input: ${failure.minimal ?? failure.input.slice(0, 512)}\n${failure.stack ?? ""}`;
}

Deno.test("every fuzz target takes a few thousand inputs with only its typed errors, in time and bounded", async (t) => {
  using supervisor = new FuzzSupervisor({ hangMs: 30_000 });
  for (const target of TARGETS) {
    await t.step(target.name, async () => {
      const report = await supervisor.run(target.name, {
        iterations: ITERATIONS,
        seed: 1,
        timeLimitMs: TIME_LIMIT_MS,
      });
      assertEquals(report.failures.map(described), []);
      // Seeds are valid inputs: a refused one means the fuzzer would start from nowhere.
      assertEquals(report.seedsRefused, []);
      assertEquals(report.inputs, ITERATIONS);
      assertEquals(report.accepted + report.typed, ITERATIONS);
    });
  }
});

Deno.test("fuzzTarget() reports an untyped exception with an input that reproduces it", async () => {
  const target = SELFTEST_TARGETS.find((item) => item.name === "selftest-untyped")!;
  const report = await fuzzTarget(target, { iterations: 2000, seed: 7 });
  assertEquals(report.failures.length, 1);
  const [failure] = report.failures;
  assertOk(failure);
  assertEquals(failure.kind, "untyped");
  assertOk(failure.error.startsWith("TypeError"), failure.error);
  assertEquals(failure.minimal, toHex(Uint8Array.of(TRIGGER)));
  assertEquals(runOnce(target, fromHex(failure.input)).kind, "untyped");
  assertOk(report.typed > 0, "the typed error was counted as typed");
  // The reported iteration makes the same input again.
  assertEquals(toHex(inputFor(target, corpusOf(target), 7, failure.iteration)), failure.input);
});

Deno.test("the supervisor names the input a hung parser was stuck on, then carries on", async () => {
  using supervisor = new FuzzSupervisor({ hangMs: 1000 });
  const module = new URL("../fuzz/_selftest_targets.ts", import.meta.url);
  const hung = await supervisor.run("selftest-hang", { iterations: 2000, seed: 3, module });
  assertEquals(hung.failures.map((failure) => failure.kind), ["hang"]);
  assertOk(fromHex(hung.failures[0]!.input).includes(TRIGGER), hung.failures[0]!.input);
  const next = await supervisor.run("selftest-untyped", { iterations: 50, seed: 3, module });
  assertEquals(next.inputs, 50);
});

Deno.test("fuzz inputs are a pure function of seed, target and iteration", () => {
  for (const target of TARGETS) {
    const corpus = corpusOf(target);
    for (const iteration of [0, 100, 12_345]) {
      assertEquals(
        toHex(inputFor(target, corpus, 5, iteration)),
        toHex(inputFor(target, corpusOf(target), 5, iteration)),
      );
    }
    const differ = [200, 201, 202, 203].some((iteration) =>
      toHex(inputFor(target, corpus, 5, iteration)) !==
        toHex(inputFor(target, corpus, 6, iteration))
    );
    assertOk(differ, `${target.name}: another seed gives other inputs`);
  }
});
