// A `blip capfilt` process for the tests, with the TEST DOUBLE models instead of compiled ones:
// the same argument parsing and pipeline as the real command. Prints "batch KEY" on stdout after
// each scored batch (KEY: the batch's first key), so a test can kill it mid-shard.
// CAPFILT_TEST_DELAY_MS slows each batch down.
import { capfiltMain } from '../../../../src/cli/commands/capfilt.js';
import { BlipError, UsageError } from '../../../../src/cli/Command.js';
import { testDoubleModels } from './testDoubleModels.js';

const delayMs = Number(process.env.CAPFILT_TEST_DELAY_MS ?? 0);
try {
  const code = await capfiltMain(process.argv.slice(2), {
    load: async () => testDoubleModels({ delayMs, onBatch: (keys) => process.stdout.write(`batch ${keys[0]}\n`) }),
    stderr: process.stderr,
  });
  process.exit(code);
} catch (e) {
  process.stderr.write(`${e instanceof UsageError || e instanceof BlipError ? '' : 'internal error: '}${(e as Error).stack ?? e}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
}
