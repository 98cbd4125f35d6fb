// Where a JSON text stops being JSON, for one-line messages. V8's JSON.parse reports either a byte
// position or, for an unexpected token, an excerpt of the text spanning lines ("…"decoder": True,
// …" is not valid JSON) — neither is a line and column a user can go to. So, once JSON.parse has
// refused a text, this small scanner walks the JSON grammar (RFC 8259) to the first offending
// character.
import { readFileSync } from 'node:fs';
import { isSystemError, systemErrorMeaning } from './filesystem.js';

/** Why `text` is not JSON, as "line L, column C: what", or undefined if it is JSON after all. */
export function jsonSyntaxProblem(text: string): string | undefined {
  const found = scan(text);
  if (!found) return undefined;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < found.at; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `line ${line}, column ${[...text.slice(lineStart, found.at)].length + 1}: ${found.why}`;
}

/** A one-line message for JSON.parse's refusal of `text`: the scanner's place and reason, else V8's first line. */
export function describeJsonError(text: string, e: unknown): string {
  return jsonSyntaxProblem(text) ?? (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

function scan(s: string): { at: number; why: string } | undefined {
  let i = 0;
  const fail = (why: string): never => {
    throw { at: i, why };
  };
  const found = (): string => {
    if (i >= s.length) return 'the text ends';
    const c = s[i]!;
    if (c === '\ufeff') return 'a byte-order mark (save the file as UTF-8 without one)';
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i, i + 40))?.[0];
    if (word === 'True' || word === 'False' || word === 'None') return `${word} (Python, not JSON: ${word === 'None' ? 'null' : word.toLowerCase()})`;
    if (word === 'NaN' || word === 'Infinity') return `${word}, which JSON has no way to write`;
    if (word) return `'${word}'`;
    if (c === "'") return 'a single quote (JSON strings take double quotes)';
    const code = c.codePointAt(0)!;
    return code < 0x20 || code === 0x7f ? `control character U+${code.toString(16).toUpperCase().padStart(4, '0')}` : `'${c}'`;
  };
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const expect = (what: string, c: string): void => {
    if (s[i] !== c) fail(`expected ${what}, found ${found()}`);
    i++;
  };
  const string = (): void => {
    expect('a string', '"');
    for (;;) {
      if (i >= s.length) fail('the string is not closed before the text ends');
      const c = s.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('a control character inside a string (write it escaped, e.g. \\n)');
      if (c === 0x5c) {
        i++;
        if (s[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) fail('\\u needs four hexadecimal digits');
          i += 5;
          continue;
        }
        if (!'"\\/bfnrt'.includes(s[i] ?? 'x') || i >= s.length) fail(`'\\${s[i] ?? ''}' is not a JSON escape`);
      }
      i++;
    }
    i++;
  };
  // an object's members or an array's values: after the opener, items separated by commas up to `close`
  const items = (close: string, item: () => void): void => {
    i++;
    ws();
    if (s[i] === close) return void i++;
    for (;;) {
      item();
      ws();
      if (s[i] !== ',') return expect(`',' or '${close}'`, close);
      i++;
      ws();
      if (s[i] === close) fail(`a comma before '${close}' (JSON has no trailing commas)`);
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      return items('}', () => {
        ws();
        if (s[i] !== '"') fail(`expected a double-quoted property name, found ${found()}`);
        string();
        ws();
        expect("':'", ':');
        value();
      });
    }
    if (c === '[') return items(']', value);
    if (c === '"') return string();
    NUMBER.lastIndex = i;
    const number = NUMBER.exec(s)?.[0];
    if (number) return void (i += number.length);
    for (const word of ['true', 'false', 'null']) if (s.startsWith(word, i)) return void (i += word.length);
    fail(`expected a value, found ${found()}`);
  };
  try {
    value();
    ws();
    if (i < s.length) fail(`expected the end of the text after the value, found ${found()}`);
    return undefined;
  } catch (e) {
    if (typeof e === 'object' && e !== null && 'at' in e) return e as { at: number; why: string };
    return undefined; // nested too deep for this scanner: V8's words then
  }
}

/** A JSON file's value, or why there is none, phrased to follow its path ("… is not valid JSON (line 3, column 12: …)"). */
export function readJsonFile(path: string): { value: unknown; problem?: undefined } | { value?: undefined; problem: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { problem: `cannot be read: ${isSystemError(e) ? systemErrorMeaning(e) : String(e)}` };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { problem: `is not valid JSON (${describeJsonError(text, e)})` };
  }
}
