// Loading the captioner and the filter from compiled artifact folders (`blip compile` output):
// the folders are checked here (a manifest that says it captions, one that has an ITM head), then
// loaded with the runtime (src/capfilt/runtimeModels.ts).
import { readManifest, type Manifest } from '../artifact/manifest.js';
import { BlipError } from '../cli/Command.js';
import type { CapfiltModels } from './model.js';
import { loadRuntimeModels, type RuntimeModelSpec } from './runtimeModels.js';

export function checkCaptioner(dir: string): Manifest {
  const m = readManifest(dir);
  // BLIP's VQA model generates too, but answers the prompt as a question instead of continuing it
  // (BLIP-2 and InstructBLIP models continue it whatever their task: their LLM reads the prompt)
  if ((m.family === 'blip' && m.task !== 'caption') || !m.outputs.some((o) => o.task === 'generate') || !m.graphs.decoder) {
    throw new BlipError('BLIP5805', `--captioner ${dir} is a ${m.task} model, not a captioning one (outputs ${m.outputs.map((o) => `${o.name}: ${o.task}`).join(', ')}); compile a BLIP captioning model for --captioner`);
  }
  if (m.text.takes_prompt === false) {
    throw new BlipError('BLIP5805', `--captioner ${dir} reads no text input, but CapFilt's captioner continues the prompt "a picture of "; compile a captioning graph whose decoder takes the text (text: prompt)`);
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

/** The CLI's model loader: check both folders, then load them with the runtime. */
export async function loadModels(spec: RuntimeModelSpec): Promise<CapfiltModels> {
  checkCaptioner(spec.captioner);
  checkFilter(spec.filter);
  return loadRuntimeModels(spec);
}
