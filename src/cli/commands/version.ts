import { createRequire } from 'node:module';
import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { unknownOption } from '../options.js';
import { VERSION } from '../../version.js';
import { hugePageStatus } from '../../../runtime/hugePages.js';
import { missingVulkanDrivers, providerStatus, vulkanDrivers, type Provider } from '../../../runtime/providers.js';
import { cpuFacts, threadsFor } from '../../../runtime/threads.js';

/**
 * Whether WebGPU finds an adapter is only known by creating a session (Dawn starting the Vulkan
 * drivers: seconds on lavapipe), so version says it did not look, and which drivers the loader would see.
 */
function webgpuNote(): string {
  if (process.platform !== 'linux') return 'adapter not checked';
  const drivers = vulkanDrivers();
  const missing = missingVulkanDrivers();
  return `adapter not checked; Vulkan drivers: ${drivers.join(', ') || 'none'}${missing.length ? `; named but missing: ${missing.join(', ')}` : ''}`;
}

const command: Command = {
  name: 'version',
  summary: 'print the blip-graph version',
  help: `Usage: blip version [--verbose]

Prints the blip-graph version. With --verbose, also the Node.js and onnxruntime-node versions,
which execution providers are installed (for WebGPU the Vulkan drivers too: whether one gives an
adapter shows only when a session starts, with --device webgpu), the CPU threads a session gets by
default, and whether large buffers get huge pages.

Example:
  blip version --verbose`,
  async run(argv) {
    const bad = argv.find((a) => a !== '--verbose');
    if (bad) throw bad.startsWith('-') ? unknownOption(bad, ['verbose']) : new UsageError(`unexpected argument '${bad}'`);
    const lines = [`blip-graph ${VERSION}`];
    if (argv.includes('--verbose')) {
      const ort = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
      lines.push(`node ${process.versions.node}, onnxruntime-node ${ort} (${process.platform}-${process.arch})`);
      const providers = (['cpu', 'cuda', 'tensorrt', 'webgpu'] as Provider[]).map((p) => {
        const s = providerStatus(p);
        if (!s.installed) return `${p}: not installed (${s.reason})`;
        return p === 'webgpu' ? `webgpu: installed (${webgpuNote()})` : `${p}: installed`;
      });
      lines.push(...providers.map((p) => `provider ${p}`));
      const cpu = cpuFacts();
      const why = [`${cpu.physicalCores ?? '?'} physical cores`, `${cpu.available} CPUs available`, ...(cpu.quota !== undefined ? [`CPU quota ${cpu.quota}`] : [])];
      lines.push(`cpu threads: ${threadsFor(cpu)} per session by default (${why.join(', ')}; --threads sets it)`);
      lines.push(hugePageStatus().line);
    }
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};
export default command;
