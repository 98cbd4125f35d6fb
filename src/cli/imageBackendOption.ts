// --image-backend as blip run, serve and capfilt take it: a usage error (exit 2) naming the flag.
import { UsageError } from './Command.js';
import { IMAGE_BACKENDS, type ImageBackend } from '../../runtime/preprocess/config.js';

/** The --image-backend value if it names a backend (undefined when the flag is not given), else a usage error. */
export function checkImageBackendOption(value: string | undefined): ImageBackend | undefined {
  if (value === undefined || (IMAGE_BACKENDS as readonly string[]).includes(value)) return value as ImageBackend | undefined;
  throw new UsageError(`--image-backend expects ${IMAGE_BACKENDS.join(' or ')}, found '${value}'`);
}
