// node:util parseArgs for the commands that use it (serve, capfilt), with its errors turned into
// usage lines: an unknown option with the nearest known one, an unexpected argument, and a value
// that starts with '-' (`--port -1`), which parseArgs takes for an option and reports as
// "ambiguous": it is passed on as the value instead, for the command's own range check to refuse.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './Command.js';
import { unknownOption } from './options.js';

type Options = NonNullable<ParseArgsConfig['options']>;
/** What parseArgs returns for `options` (values typed by the option table, positionals). */
export type ParsedOptions<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export function parseOptions<O extends Options>(argv: string[], options: O, allowPositionals: boolean): ParsedOptions<O> {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([^=]+)$/.exec(argv[i])?.[1];
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\d|^-\.\d/.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(argv[i]);
  }
  try {
    return parseArgs({ args, options, allowPositionals, strict: true }) as ParsedOptions<O>;
  } catch (e) {
    const msg = (e as Error).message;
    const unknown = /Unknown option '(--?[^']+)'/.exec(msg);
    if (unknown) throw unknownOption(unknown[1], Object.keys(options));
    const unexpected = /Unexpected argument '([^']+)'/.exec(msg);
    if (unexpected) throw new UsageError(`unexpected argument '${unexpected[1]}'`);
    const missing = /Option '(--[^ ']+)[^']*' argument missing/.exec(msg);
    if (missing) throw new UsageError(`${missing[1]} expects a value`);
    const ambiguous = /Option '(--[^ ']+)[^']*' argument is ambiguous/.exec(msg);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} expects a value, found an option after it (write ${ambiguous[1]}=VALUE for a value that starts with '-')`);
    throw new UsageError(msg.split('\n')[0].replace(/\. To specify.*$/, ''));
  }
}
