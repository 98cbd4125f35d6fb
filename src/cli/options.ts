// Command-line options read by hand (compile, graph, check, fmt, version, run) or through
// parseOptions (serve, capfilt): one wording for every command's unknown option, with the nearest
// known one, and one reading of options that take a value.
import { UsageError } from './Command.js';
import { closest } from '../diagnostics/suggest.js';

/** "unknown option '--wieghts'; did you mean '--weights'?" for `arg` (an `=VALUE` left out); `known` without dashes. */
export function unknownOption(arg: string, known: Iterable<string>): UsageError {
  const name = arg.startsWith('--') && arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
  const hint = closest(name.replace(/^-+/, ''), known);
  return new UsageError(`unknown option '${name}'${hint ? `; did you mean '--${hint}'?` : ''}`);
}

/**
 * Options that each take one value, as `--name VALUE` or `--name=VALUE`, at most once each, and
 * the arguments that are not options. A value after the option that starts with '--' is taken for
 * a forgotten value (write --name=VALUE for such a value).
 */
export function valueOptions<N extends string>(argv: string[], names: readonly N[]): { values: Partial<Record<N, string>>; positionals: string[] } {
  const values: Partial<Record<N, string>> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].startsWith('--') ? argv[i].indexOf('=') : -1;
    const [a, inline] = eq >= 0 ? [argv[i].slice(0, eq), argv[i].slice(eq + 1)] : [argv[i], undefined];
    const name = a.slice(2) as N;
    if (a.startsWith('--') && names.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`${a} expects a value`);
      if (inline === undefined && value.startsWith('--')) throw new UsageError(`${a} expects a value, found the option ${value} (write ${a}=VALUE for a value that starts with '--')`);
      if (values[name] !== undefined) throw new UsageError(`${a} is given twice`);
      values[name] = value;
    } else if (a.startsWith('-')) throw unknownOption(argv[i], names);
    else positionals.push(a);
  }
  return { values, positionals };
}
