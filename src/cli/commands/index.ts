// Registers every subcommand with the CLI (one line per command module). Modules load only when
// their command runs (or for `blip --help`): `blip run` should not carry the compiler's or the
// server's modules in its memory.
import { registerCommand } from '../main.js';

registerCommand('version', async () => (await import('./version.js')).default);
registerCommand('check', async () => (await import('./check.js')).default);
registerCommand('fmt', async () => (await import('./fmt.js')).default);
registerCommand('graph', async () => (await import('./graph.js')).default);
registerCommand('compile', async () => (await import('./compile.js')).default);
registerCommand('inspect', async () => (await import('./inspect.js')).default);
registerCommand('run', async () => (await import('./run.js')).default);
registerCommand('capfilt', async () => (await import('./capfilt.js')).default);
registerCommand('serve', async () => (await import('./serve.js')).default);
