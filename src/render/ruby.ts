/**
 * A Ruby double-quoted string literal. JSON.stringify is not enough: Ruby would still
 * interpolate `#{...}` inside double quotes.
 */
export function rubyString(value: string): string {
  let out = '"';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '\\') out += '\\\\';
    else if (char === '"') out += '\\"';
    else if (char === '#') out += '\\#';
    else if (char === '\n') out += '\\n';
    else if (char === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += char;
  }
  return `${out}"`;
}
