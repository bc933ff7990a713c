import assert from "node:assert/strict";
import { jsonErrorOffset, lineAndColumn } from "../../config/_json_error_offset.ts";

Deno.test("jsonErrorOffset() finds no error in valid JSON", () => {
  const valid = [
    "{}",
    "[]",
    ' { "a" : [ 1 , -2.5e+3 , 0 , true , false , null , "x\\n\\u00e9\\"" ] } ',
    '"just a string"',
    "0",
    '{"nested": {"deep": [[[]], {}]}}',
    "\n\t\r 12.0E-1 \n",
  ];
  for (const text of valid) {
    JSON.parse(text);
    assert.equal(jsonErrorOffset(text), undefined, text);
  }
});

Deno.test("jsonErrorOffset() agrees with V8 wherever V8 reports a position", () => {
  const invalid = [
    '{"a": 1,}',
    '{"a" 1}',
    '{"a": 1 "b": 2}',
    "[1, 2",
    "[1 2]",
    '{"a": 01}',
    '{"a": 1.}',
    '{"a": -}',
    '{"a": 1e}',
    '{"a": "\\x"}',
    '{"a": "tab\there"}',
    '{"a": "open',
    "{} x",
    "{'a': 1}",
  ];
  for (const text of invalid) {
    let message = "";
    try {
      JSON.parse(text);
    } catch (error) {
      message = (error as Error).message;
    }
    assert.ok(message !== "", `V8 accepted ${text}`);
    const position = /at position (\d+)/.exec(message)?.[1];
    const offset = jsonErrorOffset(text);
    assert.notEqual(offset, undefined, text);
    if (position !== undefined) assert.equal(offset, Number(position), `${text}: ${message}`);
  }
});

Deno.test("jsonErrorOffset() points at the end of a cut-off text and into a bad literal", () => {
  assert.equal(jsonErrorOffset('{"a": [1,'), 9);
  assert.equal(jsonErrorOffset(""), 0);
  assert.equal(jsonErrorOffset('{"a": tru}'), 9);
  assert.equal(jsonErrorOffset('{"a": nul'), 9);
});

Deno.test("lineAndColumn() counts lines and columns from 1", () => {
  const text = "ab\ncd\n\nef";
  assert.deepStrictEqual(lineAndColumn(text, 0), { line: 1, column: 1 });
  assert.deepStrictEqual(lineAndColumn(text, 2), { line: 1, column: 3 });
  assert.deepStrictEqual(lineAndColumn(text, 3), { line: 2, column: 1 });
  assert.deepStrictEqual(lineAndColumn(text, 7), { line: 4, column: 1 });
  assert.deepStrictEqual(lineAndColumn(text, 9), { line: 4, column: 3 });
});
