import assert from "node:assert/strict";
import {
  REJECT_AFTER_PACKET_ID,
  SlidingWindow,
  WINDOW_SIZE,
} from "../../protocol/sliding_window.ts";
import { loadVectors } from "../crypto/_vectors2022.ts";

const data = await loadVectors("udp_replay_window.json");

/**
 * Evaluates the vector's symbolic expressions over bigint: integers (optionally `u64`-suffixed),
 * `u64::MAX`, named constants, `+ - * <<` and parentheses.
 */
function evaluate(text: string, names: Map<string, bigint>): bigint {
  const tokens = text.match(/u64::MAX|\d+(?:u64)?|[A-Z_]+|<<|[-+*()]/g) ?? [];
  assert.equal(tokens.join(""), text.replace(/\s+/g, ""), `unparsed input in ${text}`);
  let at = 0;
  const peek = () => tokens[at];
  const atom = (): bigint => {
    const token = tokens[at++];
    if (token === "(") {
      const value = shift();
      assert.equal(tokens[at++], ")");
      return value;
    }
    if (token === "u64::MAX") return (1n << 64n) - 1n;
    if (token !== undefined && /^\d/.test(token)) return BigInt(token.replace("u64", ""));
    const value = token === undefined ? undefined : names.get(token);
    assert.ok(value !== undefined, `unknown name ${token} in ${text}`);
    return value;
  };
  const product = (): bigint => {
    let value = atom();
    while (peek() === "*") {
      at++;
      value *= atom();
    }
    return value;
  };
  const sum = (): bigint => {
    let value = product();
    while (peek() === "+" || peek() === "-") {
      value = tokens[at++] === "+" ? value + product() : value - product();
    }
    return value;
  };
  const shift = (): bigint => {
    let value = sum();
    while (peek() === "<<") {
      at++;
      value <<= sum();
    }
    return value;
  };
  const value = shift();
  assert.equal(at, tokens.length, `trailing input in ${text}`);
  return value;
}

const names = new Map<string, bigint>();
for (const [name, expr] of Object.entries(data.filter_constants as Record<string, string>)) {
  names.set(name, evaluate(expr, names));
}

Deno.test("SlidingWindow uses the window size and limit of the published sequence", () => {
  assert.equal(names.get("WINDOW_SIZE"), BigInt(WINDOW_SIZE));
  assert.equal(WINDOW_SIZE, 8128);
  assert.equal(names.get("REJECT_AFTER_MESSAGES"), REJECT_AFTER_PACKET_ID);
});

Deno.test("SlidingWindow accepts and rejects the published sequence", () => {
  const window = new SlidingWindow();
  data.sequence.forEach((step: { packet_id_expr: string; accept: boolean }, i: number) => {
    const id = evaluate(step.packet_id_expr, names);
    assert.equal(window.check(id), step.accept, `check, step ${i}: ${step.packet_id_expr}`);
    assert.equal(window.accept(id), step.accept, `accept, step ${i}: ${step.packet_id_expr}`);
  });
});

Deno.test("SlidingWindow passes the published bulk tests", async (t) => {
  const W = BigInt(WINDOW_SIZE);
  const run = (window: SlidingWindow, id: bigint, expected: boolean) =>
    assert.equal(window.accept(id), expected, `id ${id}`);
  const range = (from: bigint, to: bigint): bigint[] => {
    const out: bigint[] = [];
    for (let i = from; i <= to; i++) out.push(i);
    return out;
  };
  await t.step("1: 1..=W, then 0 once", () => {
    const w = new SlidingWindow();
    for (const i of range(1n, W)) run(w, i, true);
    run(w, 0n, true);
    run(w, 0n, false);
  });
  await t.step("2: 2..=W+1, then 1, then 0 too old", () => {
    const w = new SlidingWindow();
    for (const i of range(2n, W + 1n)) run(w, i, true);
    run(w, 1n, true);
    run(w, 0n, false);
  });
  await t.step("3: W+1 down to 1", () => {
    const w = new SlidingWindow();
    for (const i of range(1n, W + 1n).reverse()) run(w, i, true);
  });
  await t.step("4: W+2 down to 2, then 0 too old", () => {
    const w = new SlidingWindow();
    for (const i of range(2n, W + 2n).reverse()) run(w, i, true);
    run(w, 0n, false);
  });
  await t.step("5: W down to 1, W+1, then 0 too old", () => {
    const w = new SlidingWindow();
    for (const i of range(1n, W).reverse()) run(w, i, true);
    run(w, W + 1n, true);
    run(w, 0n, false);
  });
  await t.step("6: W down to 1, 0, then W+1", () => {
    const w = new SlidingWindow();
    for (const i of range(1n, W).reverse()) run(w, i, true);
    run(w, 0n, true);
    run(w, W + 1n, true);
  });
});

Deno.test("SlidingWindow.check() changes nothing", () => {
  const window = new SlidingWindow();
  for (let i = 0; i < 3; i++) assert.equal(window.check(5n), true);
  assert.equal(window.accept(5n), true);
  assert.equal(window.check(5n), false);
  assert.equal(window.check(-1n), false);
  assert.equal(window.accept(REJECT_AFTER_PACKET_ID), false);
});

Deno.test("SlidingWindow agrees with a set-based model on random traffic", () => {
  // The model: accept an ID once unless it is more than WINDOW_SIZE behind the highest seen.
  const W = BigInt(WINDOW_SIZE);
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (const spread of [100, 9000, 40000]) {
    const window = new SlidingWindow();
    const seen = new Set<bigint>();
    let highest = -1n;
    let base = 0n;
    for (let i = 0; i < 20000; i++) {
      base += BigInt(random(3)); // drifts forward, so the ring wraps many times
      const id = base + BigInt(random(spread)) - BigInt(spread >> 1);
      if (id < 0n) continue;
      const expected = !(highest - id > W) && !seen.has(id);
      assert.equal(window.check(id), expected, `check ${id} (spread ${spread}, step ${i})`);
      assert.equal(window.accept(id), expected, `accept ${id} (spread ${spread}, step ${i})`);
      if (expected) {
        seen.add(id);
        if (id > highest) highest = id;
      }
    }
  }
});
