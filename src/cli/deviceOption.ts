// --device and --threads as every command takes them: a usage error (exit 2) naming the flag.
import { UsageError } from './Command.js';
import { nearest } from './main.js';
import { DEVICES } from '../../runtime/providers.js';
import { threadsProblem } from '../../runtime/threads.js';

/** The --device value if it names a device, else a usage error with the nearest name. */
export function checkDeviceOption(device: string | undefined): string | undefined {
  if (device === undefined || (DEVICES as readonly string[]).includes(device.trim().toLowerCase())) return device;
  const hint = nearest(device.toLowerCase(), [...DEVICES]);
  throw new UsageError(`unknown device '${device}'${hint ? ` (did you mean ${hint}?)` : ''}: expected one of ${DEVICES.join(', ')}`);
}

/** The --threads value if this process can use that many, else a usage error. */
export function checkThreadsOption(threads: number | undefined): number | undefined {
  const bad = threads === undefined ? undefined : threadsProblem(threads);
  if (bad) throw new UsageError(`--threads ${bad}`);
  return threads;
}
