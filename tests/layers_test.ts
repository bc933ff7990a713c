/**
 * The layering of DESIGN.md, enforced: every import of the program's own modules (tests and
 * benchmarks aside) points down the table below, never up or sideways, and no module reaches
 * itself through its imports (a cycle).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

/** What each layer may import, besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  crypto: [],
  protocol: ["crypto"],
  config: ["protocol", "crypto"],
  relay: ["protocol", "crypto"],
  inbound: ["relay", "protocol", "crypto"],
  outbound: ["relay", "protocol", "crypto"],
  // The router picks among outbounds, so it knows their type.
  route: ["outbound", "protocol", "crypto"],
  service: ["inbound", "outbound", "route", "relay", "config", "protocol", "crypto"],
  // server.ts, local.ts, tunnel.ts: the roles' wiring.
  role: ["service", "inbound", "outbound", "route", "relay", "config", "protocol", "crypto"],
  // main.ts and mod.ts (and deno.json, which main reads for the version).
  top: ["role", "service", "config", "relay", "protocol", "crypto", "inbound", "outbound", "route"],
};
const ROLES = new Set(["server.ts", "local.ts", "tunnel.ts", "server_worker.ts"]);
/**
 * Modules every layer may import: the statuses and error classes each layer reports with. The
 * file imports nothing, so it cannot pull a layer upward.
 */
const SHARED = new Set(["protocol/errors.ts"]);
const TOPS = new Set(["main.ts", "mod.ts"]);

function layerOf(path: string): string | undefined {
  const [first, ...rest] = path.split("/");
  if (rest.length === 0) {
    if (ROLES.has(first!)) return "role";
    if (TOPS.has(first!)) return "top";
    return undefined;
  }
  return first! in MAY_IMPORT ? first : undefined;
}

/** Every .ts file of the program, relative to the root. */
function programFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory) {
        if (!path.startsWith(".") && path !== "tests" && path !== "bench") walk(path);
      } else if (path.endsWith(".ts") && layerOf(path) !== undefined) {
        out.push(path);
      }
    }
  };
  walk("");
  return out.sort();
}

/** The program files `path` imports or re-exports (relative specifiers only). */
function importsOf(path: string): string[] {
  const text = Deno.readTextFileSync(`${ROOT}${path}`);
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^"';]*?\bfrom\s+"(\.[^"]+)"/gms),
    ...text.matchAll(/^\s*import\s+"(\.[^"]+)"/gm),
  ].map((match) => match[1]!);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  return specifiers
    .map((specifier) => new URL(specifier, `file:///${dir}`).pathname.slice(1))
    .filter((target) => target.endsWith(".ts"));
}

Deno.test("no module imports a layer above or beside its own", () => {
  const violations: string[] = [];
  for (const file of programFiles()) {
    const from = layerOf(file)!;
    for (const target of importsOf(file)) {
      const to = layerOf(target);
      if (to === undefined || to === from || SHARED.has(target)) continue;
      if (!MAY_IMPORT[from]!.includes(to)) violations.push(`${file} (${from}) → ${target} (${to})`);
    }
  }
  assert.deepEqual(violations, []);
});

Deno.test("no import cycles", () => {
  const graph = new Map(programFiles().map((file) => [file, importsOf(file)]));
  const cycles: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "visiting") {
      cycles.push([...stack.slice(stack.indexOf(file)), file].join(" → "));
      return;
    }
    state.set(file, "visiting");
    stack.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file);
  assert.deepEqual(cycles, []);
});

Deno.test("the shared modules import nothing", () => {
  for (const file of SHARED) assert.deepEqual(importsOf(file), [], file);
});

Deno.test("the layer check sees imports: this file's own parser finds local.ts's", () => {
  // Guards the guard: if the regex stopped matching, both tests above would pass vacuously.
  const found = importsOf("local.ts");
  assert.ok(found.includes("service/session.ts"), found.join(", "));
  assert.ok(programFiles().length > 50);
});
