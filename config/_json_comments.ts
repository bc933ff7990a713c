/**
 * `//` and `/* … *\/` comments in JSON config files. shadowsocks-libev's parser accepts them,
 * shadowsocks-rust reads JSON5, and the published SIP008 example has them, so files written for
 * those must load here too. Comments become spaces (newlines kept), so every offset, line and
 * column of a later syntax error still points at the user's text.
 * @module
 */

/** `text` with each comment outside strings blanked out; an unclosed block comment is kept. */
export function blankJsonComments(text: string): string {
  if (!text.includes("/")) return text;
  let out = "";
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (char === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
    } else if (char === "/" && text[i + 1] === "/") {
      let end = text.indexOf("\n", i);
      if (end === -1) end = text.length;
      out += " ".repeat(end - i);
      i = end;
    } else if (char === "/" && text[i + 1] === "*") {
      const close = text.indexOf("*/", i + 2);
      if (close === -1) return out + text.slice(i); // left for the parser to report
      out += text.slice(i, close + 2).replace(/[^\n]/g, " ");
      i = close + 2;
    } else {
      out += char;
      i++;
    }
  }
  return out;
}

/** The index just past the string starting at `start` (or the text's end if unclosed). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === "\\") i += 2;
    else if (text[i] === '"') return i + 1;
    else i++;
  }
  return text.length;
}
