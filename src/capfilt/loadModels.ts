// Loading the captioner and the filter from compiled artifact folders (`blip compile` output).
// The folders are checked here (a manifest that says it captions, one that has an ITM head);
// running them is the runtime's job (runtime/), wired in through the adapter once its
// captioning/ITM task API exists.
import { readManifest, type Manifest } from '../artifact/manifest.js';
import { BlipError } from '../cli/Command.js';
import type { CapfiltModels, ModelSpec } from './model.js';

export function checkCaptioner(dir: string): Manifest {
  const m = readManifest(dir);
  if (!m.outputs.some((o) => o.task === 'generate') || !m.graphs.decoder) {
    throw new BlipError('BLIP5805', `--captioner ${dir} is a ${m.task} model without a generating output (${m.outputs.map((o) => `${o.name}: ${o.task}`).join(', ')}); compile a BLIP captioning model for --captioner`);
  }
  return m;
}

export function checkFilter(dir: string): Manifest {
  const m = readManifest(dir);
  if (!m.outputs.some((o) => o.task === 'itm') || !m.graphs.retrieval) {
    throw new BlipError('BLIP5805', `--filter ${dir} has no ITM output (${m.outputs.map((o) => `${o.name}: ${o.task}`).join(', ')}); compile a BLIP retrieval model with an ITM head for --filter`);
  }
  return m;
}

/** The CLI's model loader. */
export async function loadModels(spec: ModelSpec): Promise<CapfiltModels> {
  checkCaptioner(spec.captioner);
  checkFilter(spec.filter);
  throw new BlipError(
    'BLIP5806',
    'this build of blip-graph cannot run captioning and ITM models yet (the runtime task API is not wired into capfilt); the models were checked and are valid',
  );
}
