// --device cpu|cuda|tensorrt|webgpu|auto -> onnxruntime-node execution providers.
//
// onnxruntime-node 1.30 throws at session creation when a requested provider cannot start, even
// with 'cpu' after it in the list, so each device is tried on its own: a provider whose libraries
// are not installed, or which finds no GPU / adapter, is a one-line BLIP504x error saying how to get
// it; `auto` tries CUDA (when its libraries are installed) and WebGPU, then falls back to CPU.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DeviceError, firstLine } from './errors.js';
import { PROVIDER_GAPS } from './providerGaps.js';

export const DEVICES = ['cpu', 'cuda', 'tensorrt', 'webgpu', 'auto'] as const;
export type Device = (typeof DEVICES)[number];
export type Provider = Exclude<Device, 'auto'>;

export function parseDevice(name: string): Device {
  const d = name.trim().toLowerCase();
  if ((DEVICES as readonly string[]).includes(d)) return d as Device;
  throw new DeviceError('BLIP5040', `unknown device "${name}": expected one of ${DEVICES.join(', ')}`);
}

/** Where onnxruntime-node keeps its native libraries for this platform. */
export function nativeDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
    return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

const PROVIDER_LIBS: Partial<Record<Provider, string[]>> = {
  cuda: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
  tensorrt: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so'],
};

export interface ProviderStatus {
  provider: Provider;
  /** The provider's libraries are present (WebGPU and CPU are built into libonnxruntime). */
  installed: boolean;
  /** Why not, with what to do about it. */
  reason?: string;
}

const REINSTALL =
  "fetch them once, with network access, on a Linux x64 machine with CUDA 12 and cuDNN 9: 'ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node' (README: GPUs)";

/** Whether a provider could be used here, as far as can be told without creating a session. */
export function providerStatus(p: Provider, dir = nativeDir(), platform = `${process.platform}-${process.arch}`): ProviderStatus {
  if (p === 'cpu') return { provider: p, installed: true };
  if (p === 'webgpu') {
    if (platform === 'linux-arm64') return { provider: p, installed: false, reason: 'onnxruntime-node has no WebGPU provider on Linux arm64' };
    if (platform.startsWith('linux') && !findVulkanLoader()) {
      return { provider: p, installed: false, reason: `no WebGPU adapter: the Vulkan loader libvulkan.so.1 is not installed; ${VULKAN_HINT}` };
    }
    return { provider: p, installed: true };
  }
  if (platform !== 'linux-x64' && platform !== 'win32-x64') {
    return { provider: p, installed: false, reason: `onnxruntime-node ships the ${p === 'cuda' ? 'CUDA' : 'TensorRT'} provider for Linux x64 and Windows x64 only (this is ${platform})` };
  }
  const libs = PROVIDER_LIBS[p] ?? [];
  const missing = dir ? libs.filter((l) => !existsSync(join(dir, platform.startsWith('win32') ? l.replace(/^lib/, '').replace(/\.so$/, '.dll') : l))) : libs;
  if (missing.length) {
    const what = p === 'cuda' ? "onnxruntime's CUDA 12 provider libraries" : "onnxruntime's TensorRT provider libraries (and TensorRT 10 itself)";
    return { provider: p, installed: false, reason: `${what} are not installed (${missing.join(', ')} missing from ${dir ?? 'onnxruntime-node'}); ${REINSTALL}` };
  }
  return { provider: p, installed: true };
}

/** Execution-provider list for one provider (options onnxruntime-node accepts). */
export function executionProviders(p: Provider, deviceId = 0): Array<string | { name: string; deviceId?: number }> {
  if (p === 'cpu') return ['cpu'];
  if (p === 'cuda' || p === 'tensorrt') return [{ name: p, deviceId }];
  return ['webgpu'];
}

/** ORT's first error line without its source-location preamble ("/onnxruntime_src/...:136 ... was false."). */
export function ortMessage(e: unknown): string {
  const m = firstLine(e);
  const cut = m.match(/^\/\S+:\d+ .*?(?:was false\.|failed[:.])\s*(.+)$/);
  return (cut ? cut[1] : m).trim();
}

/** The Vulkan loader WebGPU (Dawn) needs on Linux, if it can be found. */
export function findVulkanLoader(env = process.env): string | undefined {
  if (process.platform !== 'linux') return 'n/a';
  const dirs = [
    ...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/lib/x86_64-linux-gnu',
    '/lib64',
    '/usr/local/lib',
  ];
  for (const d of dirs) {
    const f = join(d, 'libvulkan.so.1');
    if (existsSync(f)) return f;
  }
  return undefined;
}

const VULKAN_HINT = "WebGPU runs over Vulkan here: install libvulkan1 and a Vulkan driver (the GPU vendor's ICD, e.g. NVIDIA's, or Mesa's lavapipe from mesa-vulkan-drivers >= 24 to run on the CPU)";

/** The variable naming the Vulkan driver manifests, when one is set (it replaces the loader's search). */
function driverVariable(env: NodeJS.ProcessEnv): 'VK_DRIVER_FILES' | 'VK_ICD_FILENAMES' | undefined {
  return env.VK_DRIVER_FILES ? 'VK_DRIVER_FILES' : env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : undefined;
}

/** The manifests (file names) at a path the variable names: the file, or a folder's .json files; none where it does not exist. */
function manifestsAt(path: string): string[] {
  try {
    if (statSync(path).isDirectory()) return readdirSync(path).filter((f) => f.endsWith('.json'));
    return [path.slice(path.lastIndexOf('/') + 1)];
  } catch {
    return [];
  }
}

/** The Vulkan drivers (ICD manifests) installed in the standard manifest folders. */
function installedVulkanDrivers(env: NodeJS.ProcessEnv): string[] {
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', join(env.HOME ?? '/nonexistent', '.local/share/vulkan/icd.d')];
  return dirs.flatMap((d) => (existsSync(d) ? manifestsAt(d) : []));
}

/**
 * The Vulkan drivers (ICD manifests) the loader would see: those VK_DRIVER_FILES / VK_ICD_FILENAMES
 * name when set (they replace the search; a path that does not exist gives none), else the standard
 * manifest folders'.
 */
export function vulkanDrivers(env = process.env): string[] {
  const v = driverVariable(env);
  if (v) return env[v]!.split(':').filter(Boolean).flatMap(manifestsAt);
  return installedVulkanDrivers(env);
}

/** The paths VK_DRIVER_FILES / VK_ICD_FILENAMES name that do not exist (the loader skips them). */
export function missingVulkanDrivers(env = process.env): string[] {
  const v = driverVariable(env);
  return v ? env[v]!.split(':').filter((f) => f && !existsSync(f)) : [];
}

/** What to check when Dawn found no adapter although the Vulkan loader loaded. */
function adapterHint(drivers: string[], env = process.env): string {
  const missing = missingVulkanDrivers(env);
  const v = driverVariable(env);
  const gone = missing.length ? `${v} names ${missing.length === 1 ? 'a driver manifest that does' : 'driver manifests that do'} not exist: ${missing.join(', ')}; ` : '';
  if (drivers.length === 0 && v) {
    const installed = installedVulkanDrivers(env);
    return `${gone}no Vulkan driver is left to load: ${v} replaces the loader's search, so name an existing manifest${installed.length ? `, or unset it to use those installed (${installed.join(', ')})` : `; ${VULKAN_HINT}`}`;
  }
  if (drivers.length === 0) return `no Vulkan driver (ICD manifest) is installed; ${VULKAN_HINT}`;
  return gone + adapterHintFor(drivers);
}

/** The hint for drivers that loaded and gave no adapter. */
function adapterHintFor(drivers: string[]): string {
  const lavapipe = drivers.some((d) => d.startsWith('lvp_icd'));
  // Seen on an H100 machine (docs/webgpu.md): nvidia_icd.json present, libvulkan1 alone, no adapter;
  // with glvnd's libraries installed as well, the H100 was found.
  const nvidia = drivers.some((d) => d.startsWith('nvidia'));
  return (
    `Vulkan drivers found: ${drivers.join(', ')}; none gave an adapter Dawn accepts (it prints why on stderr)` +
    (lavapipe ? "; Mesa's lavapipe (lvp_icd) is accepted from Mesa 24 on (Debian 12: mesa-vulkan-drivers from bookworm-backports)" : '') +
    (nvidia ? "; NVIDIA's Vulkan driver loads through glvnd: install libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 beside libvulkan1" : '') +
    '; for a GPU, check that its Vulkan driver is installed and the device is visible to this process'
  );
}

/**
 * Whether a WebGPU session-creation failure is about the adapter (Dawn's instance, adapter or device,
 * the Vulkan loader or driver), not about the model: "Failed to get a WebGPU adapter: No supported
 * adapters", "Couldn't load Vulkan: libvulkan.so.1: …".
 */
export function webgpuAdapterFailure(msg: string, file?: string): boolean {
  // the model's path is no clue: onnxruntime names it ("Load model from …/vulkan-models/decoder.onnx
  // failed: …"), and a folder may well be called so
  const text = (file ? msg.split(file).join('') : msg).replace(/Load model from .*? failed/g, '');
  return /Failed to (?:get|create) (?:a )?(?:WebGPU |wgpu::)(?:adapter|device|instance)|vulkan/i.test(text);
}

/**
 * Turn a session-creation failure of `file` on a provider into one line: BLIP5042 with the fix where
 * the provider cannot start, BLIP5043 naming the file where the model is what failed (a truncated
 * graph, a kernel the provider refuses), as on the CPU.
 */
export function providerFailure(p: Provider, e: unknown, file?: string): DeviceError {
  const msg = ortMessage(e);
  if (p === 'webgpu') {
    if (!webgpuAdapterFailure(msg, file)) return new DeviceError('BLIP5043', `device webgpu: cannot load ${file ?? 'the model'} (${msg})`);
    const loader = /libvulkan|load vulkan/i.test(msg);
    const linux = process.platform === 'linux';
    return new DeviceError(
      'BLIP5042',
      `device webgpu: no usable WebGPU adapter (${msg}); ${loader || !linux ? VULKAN_HINT : adapterHint(vulkanDrivers())}`,
    );
  }
  if (p === 'cuda' || p === 'tensorrt') {
    const lib = /shared library|\.so|cannot open/i.test(msg);
    return new DeviceError(
      lib ? 'BLIP5041' : 'BLIP5042',
      lib
        ? `device ${p}: the provider libraries do not load (${msg}); they need CUDA 12 and cuDNN 9${p === 'tensorrt' ? ' and TensorRT 10' : ''} on the library path; ${REINSTALL}`
        : `device ${p}: the provider cannot start (${msg}); check the NVIDIA driver and that a GPU is visible (nvidia-smi)`,
    );
  }
  return new DeviceError('BLIP5043', `device cpu: cannot create the session (${msg})`);
}

/**
 * Linux: whether a GPU device node is visible to this process (DRM render nodes, NVIDIA's, WSL's).
 * Without one, any Vulkan adapter is a CPU driver such as Mesa's lavapipe, slower than the CPU provider.
 */
export function gpuNodeVisible(dev = '/dev'): boolean {
  try {
    if (readdirSync(dev).some((f) => /^nvidia\d+$/.test(f) || f === 'dxg')) return true;
    return readdirSync(join(dev, 'dri')).some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** What an artifact was compiled for: its manifest's `target` (absent: plain ONNX) and `dtype`. */
export interface Build {
  target?: 'cpu' | 'cuda' | 'webgpu';
  dtype: 'float32' | 'float16';
}

/** Providers as messages name them. */
const PROVIDER_NAMES: Record<Provider, string> = { cpu: 'CPU', cuda: 'CUDA', tensorrt: 'TensorRT', webgpu: 'WebGPU' };
const BUILD_TARGETS = ['cpu', 'cuda', 'webgpu'] as const;

/** The fused operators of PROVIDER_GAPS that a build holds and provider `p` cannot run. */
const gapsOf = (target: (typeof BUILD_TARGETS)[number], dtype: Build['dtype'], p: Provider) => PROVIDER_GAPS.filter((g) => g.provider === p && g.builds[target]?.includes(dtype));

/**
 * Why an artifact compiled as `build` cannot run on provider `p`; undefined where it can. A plain
 * build runs everywhere; a `--target` build runs wherever its fused operators do, as
 * runtime/providerGaps.ts lists them (derived from the fusions that write them): float32
 * `--target cpu` and `--target cuda` builds hold attention the WebGPU provider cannot run
 * (MultiHeadAttention with a key padding mask; cpu: GroupQueryAttention with causal 0); float16
 * ones keep attention decomposed, and `--target webgpu`'s fusions, the norms, BiasGelu and
 * RotaryEmbedding, have CPU and CUDA kernels (the review's webgpu fixtures give the same tokens on
 * the CPU provider). onnxruntime places a node a GPU provider has no kernel for, such as float32
 * GroupQueryAttention on CUDA, on the CPU provider, so that is no mismatch.
 */
export function buildMismatch(build: Build | undefined, p: Provider): string | undefined {
  const target = build?.target;
  if (!build || !target) return undefined;
  const gaps = gapsOf(target, build.dtype, p);
  if (!gaps.length) return undefined;
  const runs = BUILD_TARGETS.filter((t) => t !== target && !gapsOf(t, build.dtype, p).length).map((t) => `with --target ${t}`);
  return `it was compiled with --target ${target}, whose fused operators (${gaps.map((g) => g.cannot).join(', or ')}) the ${PROVIDER_NAMES[p]} provider cannot run; recompile it ${[...runs, 'without --target (plain ONNX)'].join(', or ')}, or run it with --device ${target}`;
}

/**
 * The providers `device` means for an artifact compiled as `build`, in the order they are tried
 * (auto: CUDA, WebGPU, then CPU, less those the build cannot run on; on Linux WebGPU only when a GPU
 * is visible: `--device webgpu` still runs on a CPU Vulkan driver).
 */
export function candidates(device: Device, build?: Build, gpuVisible = process.platform !== 'linux' || gpuNodeVisible()): Provider[] {
  if (device !== 'auto') return [device];
  const all: Provider[] = gpuVisible ? ['cuda', 'webgpu', 'cpu'] : ['cuda', 'cpu'];
  return all.filter((p) => !buildMismatch(build, p));
}
