/**
 * Finds where a JSON text first goes wrong. `JSON.parse` reports a position for most errors but
 * not all (V8's "Unexpected token" form has none), and users need a line and column for every
 * one, so this small syntax-only scanner (RFC 8259 grammar, no values built) supplies it.
 * @module
 */

/** Thrown inside the scanner to unwind to the offset of the first error. */
class Stop {
  constructor(readonly offset: number) {}
}

/**
 * Nesting the scanner follows before it stops (at that bracket): it recurses per level, and a
 * hostile document (a SIP008 provider's) of 100 000 brackets would overflow the stack. No
 * config comes near this.
 */
const MAX_NESTING = 512;

/** The UTF-16 offset of the first syntax error in `text`, or `undefined` if it is valid JSON. */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  let depth = 0;

  const skipSpace = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const expect = (char: string) => {
    if (text[i] !== char) throw new Stop(i);
    i++;
  };
  const digits = () => {
    const start = i;
    while (i < text.length && text[i]! >= "0" && text[i]! <= "9") i++;
    if (i === start) throw new Stop(i);
  };

  const string = () => {
    expect('"');
    for (;;) {
      if (i >= text.length) throw new Stop(i);
      const char = text[i]!;
      if (char === '"') {
        i++;
        return;
      }
      if (char < " ") throw new Stop(i);
      if (char !== "\\") {
        i++;
        continue;
      }
      const escape = text[i + 1] ?? "";
      if ('"\\/bfnrt'.includes(escape) && escape !== "") i += 2;
      else if (escape === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
      else throw new Stop(i + 1);
    }
  };

  const number = () => {
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else digits();
    if (text[i] === ".") {
      i++;
      digits();
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      digits();
    }
  };

  const literal = (word: string) => {
    for (const char of word) expect(char);
  };

  const value = (): void => {
    skipSpace();
    const char = text[i];
    if (char === "{") object();
    else if (char === "[") array();
    else if (char === '"') string();
    else if (char === "-" || (char !== undefined && char >= "0" && char <= "9")) number();
    else if (char === "t") literal("true");
    else if (char === "f") literal("false");
    else if (char === "n") literal("null");
    else throw new Stop(i);
  };

  const nested = (inner: () => void) => {
    if (++depth > MAX_NESTING) throw new Stop(i);
    inner();
    depth--;
  };

  const object = () => nested(objectBody);
  const array = () => nested(arrayBody);

  const objectBody = () => {
    expect("{");
    skipSpace();
    if (text[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      skipSpace();
      string();
      skipSpace();
      expect(":");
      value();
      skipSpace();
      if (text[i] !== ",") return expect("}");
      i++;
    }
  };

  const arrayBody = () => {
    expect("[");
    skipSpace();
    if (text[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      value();
      skipSpace();
      if (text[i] !== ",") return expect("]");
      i++;
    }
  };

  try {
    value();
    skipSpace();
    if (i < text.length) throw new Stop(i);
    return undefined;
  } catch (error) {
    if (error instanceof Stop) return error.offset;
    throw error;
  }
}

/** 1-based line and column of a UTF-16 offset, counting `\n` as the line break. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf("\n");
  return { line: before.split("\n").length, column: offset - lastBreak };
}
