/**
 * How much a parser's answer holds on to, in approximate bytes: the allocation property of the
 * fuzzer is "what a parser returns is at most {@linkcode outputBudget} of its input", which
 * catches answers that grow faster than the input (a length field turned into an allocation,
 * a quadratic expansion) without the cost of heap snapshots.
 *
 * Counted: each distinct `ArrayBuffer` behind a typed array once (a view keeps its whole buffer
 * alive), strings at 2 bytes per code unit, 16 bytes per object or array plus 8 per entry, and
 * the source of a `RegExp`. Functions, `#private` fields and prototypes are not walked.
 * @module
 */

/** Bytes an answer may hold for an input of `inputLength` bytes: 16 per byte plus 16 KiB. */
export function outputBudget(inputLength: number): number {
  return 16 * inputLength + 16 * 1024;
}

/** Most nodes visited: beyond this the count so far is returned (and is over any budget here). */
const MAX_NODES = 200_000;

/** Approximate bytes `value` keeps reachable (see the module doc for what counts). */
export function retainedSize(value: unknown): number {
  const seen = new Set<unknown>();
  let nodes = 0;
  const walk = (item: unknown, depth: number): number => {
    if (++nodes > MAX_NODES || depth > 64) return 0;
    switch (typeof item) {
      case "string":
        return 2 * item.length;
      case "number":
      case "boolean":
      case "bigint":
      case "symbol":
        return 8;
      case "object":
        break;
      default:
        return 0;
    }
    if (item === null || seen.has(item)) return 0;
    seen.add(item);
    if (ArrayBuffer.isView(item)) {
      if (seen.has(item.buffer)) return 16;
      seen.add(item.buffer);
      return 16 + item.buffer.byteLength;
    }
    if (item instanceof RegExp) return 16 + 2 * item.source.length;
    let size = 16;
    if (item instanceof Map) {
      for (const [key, entry] of item) size += 8 + walk(key, depth + 1) + walk(entry, depth + 1);
      return size;
    }
    if (item instanceof Set) {
      for (const entry of item) size += 8 + walk(entry, depth + 1);
      return size;
    }
    for (const key of Object.keys(item)) {
      size += 8 + 2 * key.length + walk((item as Record<string, unknown>)[key], depth + 1);
    }
    return size;
  };
  const size = walk(value, 0);
  return nodes > MAX_NODES ? Number.MAX_SAFE_INTEGER : size;
}
