/** README tables that must follow the code: the statuses. */
import assert from "node:assert/strict";
import { STATUSES } from "../protocol/errors.ts";

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

Deno.test("README's status table lists every status, in STATUSES order", () => {
  const rows = [...README.matchAll(/^\| `((?:OK|ERR_[A-Z_]+))` +\|/gm)].map((m) => m[1]);
  assert.deepEqual(rows, [...STATUSES]);
});
