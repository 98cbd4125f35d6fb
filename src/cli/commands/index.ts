// Registers every subcommand with the CLI (one import line per command module).
import { registerCommand } from '../main.js';

registerCommand(async () => (await import('./version.js')).default);
registerCommand(async () => (await import('./check.js')).default);
registerCommand(async () => (await import('./fmt.js')).default);
registerCommand(async () => (await import('./graph.js')).default);
registerCommand(async () => (await import('./compile.js')).default);
registerCommand(async () => (await import('./inspect.js')).default);
registerCommand(async () => (await import('./run.js')).default);
registerCommand(async () => (await import('./capfilt.js')).default);
registerCommand(async () => (await import('./serve.js')).default);
