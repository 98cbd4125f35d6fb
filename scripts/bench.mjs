#!/usr/bin/env node
// npm run bench [-- options]: runs bench/run.ts (blip-graph vs transformers' PyTorch generate) with tsx.
import { spawnSync } from 'node:child_process';
const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
