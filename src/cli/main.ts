// `blip`: the command-line entry point. Dispatches to src/cli/commands/*.ts.
import { BlipError, UsageError, type Command } from './Command.js';
import { isSystemError, systemErrorLine } from '../filesystem.js';

/** Subcommands, in the order `blip --help` lists them. Add a command by adding its module here. */
const COMMANDS: Array<{ name: string; load: () => Promise<Command> }> = [];

export function registerCommand(name: string, load: () => Promise<Command>): void {
  COMMANDS.push({ name, load });
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 2)) ? best : undefined;
}

async function registered(): Promise<typeof COMMANDS> {
  await import('./commands/index.js');
  return COMMANDS;
}

/** Loads one command's module; the registered name must be the name the module gives itself. */
async function loadCommand(entry: (typeof COMMANDS)[number]): Promise<Command> {
  const cmd = await entry.load();
  if (cmd.name !== entry.name) throw new Error(`command '${entry.name}' is registered for a module named '${cmd.name}'`);
  return cmd;
}

/** Every command, loaded (for `blip --help`, which lists their summaries). */
export async function loadCommands(): Promise<Command[]> {
  return Promise.all((await registered()).map(loadCommand));
}

function mainHelp(cmds: Command[]): string {
  const w = Math.max(...cmds.map((c) => c.name.length));
  return [
    'blip — compile and run BLIP, BLIP-2 and InstructBLIP models described in .blip files',
    '',
    'Usage: blip <command> [options]',
    '',
    'Commands:',
    ...cmds.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    'Examples:',
    '  blip check graphs/blip2-opt.blip',
    '  blip compile graphs/blip2-opt.blip --weights ./blip2-opt-2.7b --out ./out/blip2-opt',
    '  blip run ./out/blip2-opt --image cat.jpg --prompt "Question: what is this? Answer:"',
    '',
    "Run 'blip <command> --help' for a command's options.",
  ].join('\n');
}

/**
 * `--help` / `-h` anywhere, except as the value of an option that takes one (`--prompt --help` is
 * a prompt): the options that take a value are those the help lists with one (`  --prompt TEXT`).
 */
function asksForHelp(cmd: Command, rest: string[]): boolean {
  const takesValue = new Set([...cmd.help.matchAll(/^\s+(--[a-z][a-z0-9-]*)[ =][A-Z]/gm)].map((m) => m[1]));
  return rest.some((a, i) => (a === '--help' || a === '-h') && !(i > 0 && takesValue.has(rest[i - 1])));
}

function unknownCommand(name: string, entries: typeof COMMANDS): number {
  const hint = nearest(name, entries.map((c) => c.name));
  process.stderr.write(`blip: unknown command '${name}'.${hint ? ` Did you mean '${hint}'?` : ''} Run 'blip --help' for the list.\n`);
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  const entries = await registered();
  const [name, ...rest] = argv;
  // `blip help run` is `blip run --help`; `blip help nope` is the unknown command it names;
  // `blip help help` is the main help (help is no registered command, but a word users type)
  if (name === 'help' && rest.length === 1 && rest[0] !== '--help' && rest[0] !== '-h' && rest[0] !== 'help') {
    if (entries.some((c) => c.name === rest[0])) return main([rest[0], '--help']);
    return unknownCommand(rest[0], entries);
  }
  if (name === 'help' && rest.length > 1) {
    process.stderr.write(`blip: 'blip help' takes one command, found ${rest.length} (${rest.join(' ')}). Run 'blip --help' for the list.\n`);
    return 2;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp(await loadCommands()) + '\n');
    return 0;
  }
  if (name === '--version' || name === '-v') {
    const { VERSION } = await import('../version.js');
    process.stdout.write(`blip-graph ${VERSION}\n`);
    return 0;
  }
  const entry = entries.find((c) => c.name === name);
  if (!entry) return unknownCommand(name, entries);
  const cmd = await loadCommand(entry);
  if (asksForHelp(cmd, rest)) {
    process.stdout.write(cmd.help.trimEnd() + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`blip ${cmd.name}: ${e.message}\nRun 'blip ${cmd.name} --help' for usage.\n`);
      return 2;
    }
    if (e instanceof BlipError || (e instanceof Error && /^BLIP\d{4}$/.test((e as { code?: string }).code ?? ''))) {
      const code = (e as unknown as { code: string }).code;
      process.stderr.write(`error ${code}: ${(e as Error).message}\n`);
      return 1;
    }
    // the machine's refusal (disk full, permissions, a file where a folder belongs), not a bug
    if (isSystemError(e)) {
      process.stderr.write(`blip ${cmd.name}: ${systemErrorLine(e)}\n`);
      return 1;
    }
    process.stderr.write(`blip ${cmd.name}: internal error: ${(e as Error)?.stack ?? String(e)}\nThis is a bug in blip-graph; please report it with the command you ran.\n`);
    return 2;
  }
}
