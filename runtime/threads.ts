// How many intra-op threads a CPU session gets when the caller does not say. onnxruntime's own
// default (one per physical core, as it detects them) gave one thread on a 2-vCPU AMD EPYC VM whose
// kernel reports two cores of one thread each, so every model ran at half speed there (BLIP-base
// image encode 1129 against 581 ms, 10 tokens 196 against 120 ms); the runtime counts the cores
// itself: physical cores from the kernel's CPU topology, no more than the CPUs this process may
// run on (affinity) nor than a container's CPU quota (cgroup v2 cpu.max, v1 cfs_quota_us).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

export interface CpuFacts {
  /** Physical cores among the online CPUs (distinct package / core ids), if the kernel says. */
  physicalCores?: number;
  /** CPUs this process may run on. */
  available: number;
  /** CPUs' worth of time a container's quota allows, if one is set. */
  quota?: number;
}

const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** Physical cores from /sys/devices/system/cpu/cpu<N>/topology (Linux); undefined elsewhere. */
function physicalCores(sys: string): number | undefined {
  const dir = join(sys, 'devices/system/cpu');
  if (!existsSync(dir)) return undefined;
  const cores = new Set<string>();
  for (const name of readdirSync(dir)) {
    if (!/^cpu\d+$/.test(name)) continue;
    if (read(join(dir, name, 'online')) === '0') continue; // offline (cpu0 has no such file)
    const core = read(join(dir, name, 'topology/core_id'));
    if (core === undefined) continue;
    cores.add(`${read(join(dir, name, 'topology/physical_package_id')) ?? '0'}:${core}`);
  }
  return cores.size || undefined;
}

/** A container's CPU quota in CPUs: cgroup v2 `cpu.max` ("max 100000" = none), else v1 cfs. */
function cpuQuota(sys: string): number | undefined {
  const v2 = read(join(sys, 'fs/cgroup/cpu.max'));
  if (v2) {
    const [quota, period] = v2.split(/\s+/);
    return quota === 'max' || !Number(period) ? undefined : Number(quota) / Number(period);
  }
  const q = Number(read(join(sys, 'fs/cgroup/cpu/cpu.cfs_quota_us')));
  const p = Number(read(join(sys, 'fs/cgroup/cpu/cpu.cfs_period_us')));
  return q > 0 && p > 0 ? q / p : undefined;
}

/** What the machine says, read from `sys` (/sys; tests give a directory of their own). */
export function cpuFacts(sys = '/sys', available = availableParallelism()): CpuFacts {
  return { physicalCores: physicalCores(sys), available, quota: cpuQuota(sys) };
}

/** One thread per physical core this process may use, at least one. */
export function threadsFor(f: CpuFacts): number {
  let n = Math.min(f.physicalCores ?? f.available, f.available);
  if (f.quota !== undefined) n = Math.min(n, Math.floor(f.quota));
  return Math.max(1, n);
}

let cached: number | undefined;

/** The default intra-op thread count of CPU sessions (computed once per process). */
export function defaultThreads(): number {
  return (cached ??= threadsFor(cpuFacts()));
}

/**
 * The most intra-op threads a session may ask for: 4 per CPU this process may run on. More only
 * spin against each other (1000 threads on 2 CPUs took 38 s to open one model; 100000 never did).
 */
export function maxThreads(available = availableParallelism()): number {
  return 4 * Math.max(1, available);
}

/** Why `n` threads cannot be given, or undefined when they can. */
export function threadsProblem(n: number, available = availableParallelism()): string | undefined {
  if (!Number.isInteger(n) || n < 1) return `must be a positive integer, found ${n}`;
  const max = maxThreads(available);
  if (n > max) return `is ${n}, more than the ${max} this process can use (4 per CPU; it may run on ${available})`;
  return undefined;
}
