// Child processes for the CapFilt tests: `blip capfilt` with the test-double models (run from the
// TypeScript sources under tsx, or from dist/ when the tests run compiled), and redis-server.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const isTs = here.endsWith('.ts');
const helper = join(dirname(here), `capfiltProcess.${isTs ? 'ts' : 'js'}`);

function repoRoot(): string {
  let d = dirname(here);
  while (!existsSync(join(d, 'package.json')) || d.endsWith(`${'/'}dist`)) {
    const up = dirname(d);
    if (up === d) throw new Error('package.json not found above ' + here);
    d = up;
  }
  return d;
}

/** A running child with its output collected line by line. */
export class Proc {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(cmd: string, args: string[], env: Record<string, string> = {}, cwd = repoRoot()) {
    this.child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (stream: NodeJS.ReadableStream, into: string[]): void => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        into.push(...lines);
        for (const w of this.waiters.splice(0)) w();
      });
    };
    collect(this.child.stdout!, this.out);
    collect(this.child.stderr!, this.err);
    this.exited = new Promise((res) =>
      this.child.on('exit', (code, signal) => {
        res({ code, signal });
        for (const w of this.waiters.splice(0)) w();
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Resolve with the first line (stdout or stderr) matching `re`, at or after line index `from`.
   * Rejects if the process exits first, or after `guardMs` (a guard against hanging, not a timing check).
   */
  async waitFor(re: RegExp, stream: 'out' | 'err' = 'out', guardMs = 60_000): Promise<string> {
    const lines = stream === 'out' ? this.out : this.err;
    let seen = 0;
    const deadline = Date.now() + guardMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      for (; seen < lines.length; seen++) if (re.test(lines[seen])) return lines[seen];
      if (exited) throw new Error(`process exited before printing ${re}; stderr:\n${this.err.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no line matching ${re} after ${guardMs} ms; stderr:\n${this.err.join('\n')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}

/** `blip capfilt ARGS` with the test-double models; CAPFILT_TEST_DELAY_MS = delayMs. */
export function capfilt(args: string[], delayMs = 0): Proc {
  return new Proc(process.execPath, [...(isTs ? ['--import', 'tsx'] : []), helper, ...args], { CAPFILT_TEST_DELAY_MS: String(delayMs) });
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free port (or on `port`: to restart one), without persistence. */
export async function startRedis(port?: number): Promise<RedisServer> {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error('redis-server is not installed: the CapFilt queue tests need it (.ci/run installs it: apt-get install redis-server)');
  }
  port ??= await freePort();
  const p = new Proc('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, process.cwd());
  await p.waitFor(/Ready to accept connections/, 'out', 20_000);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await p.kill('SIGTERM');
    },
  };
}
