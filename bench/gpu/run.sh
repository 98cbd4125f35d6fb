#!/usr/bin/env bash
# The GPU check of issue 7, in one call of the device tool (bench/gpu/README.md):
#
#   run(command="bash bench/gpu/run.sh", carry=[".device/gpu", ".gl"], timeout_s=600)
#
# after bench/gpu/prepare.sh has been run on the development machine. On the GPU machine it
#   1. unpacks the carried Node 20 and the built blip-graph (dist/ + production node_modules),
#   2. installs the Vulkan loader (.gl/*.deb into /) and reads the adapter (vulkaninfo, a one-op
#      WebGPU session), nvidia-smi and the versions,
#   3. makes a full-size random BLIP-2 OPT-2.7b-layout checkpoint in float16 with transformers
#      (test/oracle/make_fullsize_blip2.py --device cuda: drawn on the GPU),
#   4. compiles it with graphs/pinned/blip2-opt-2.7b.blip --dtype fp16 --target webgpu, while
#      PyTorch (bench/torch_generate.py, CUDA, float16) times the same checkpoint, image and decoding,
#   5. captions the bench image on --device webgpu (bench/ours.ts: greedy, exactly 20 new tokens,
#      batch 1, one warm-up then 3 timed calls), GPU memory sampled with nvidia-smi,
#   6. times PyTorch again alone if time is left, and compares the tokens,
# writing $OUT/summary.{md,json}, $OUT/env.txt, $OUT/run.log and $OUT/logs.tar.gz. Every phase
# has its own timeout inside one deadline (GPU_BUDGET_S, default 530 s), logs, and the run goes on
# when one fails; the summary is rewritten after every phase.
#
# GPU_DRY_RUN=1 runs the same plumbing here without a GPU: the OPT-2.7b widths with 2 layers per
# stack, the unpinned graph, blip-graph on --device cpu, PyTorch on the CPU in float32, the
# reference Python (../shared/oracle/py), nothing installed into /. Every setting can be overridden:
# GPU_LAYOUT GPU_LAYERS GPU_GRAPH GPU_TARGET GPU_OURS_DEVICE GPU_TORCH_DEVICE GPU_TORCH_DTYPE GPU_DRAW
# GPU_TOKENS GPU_REPEAT GPU_THREADS GPU_TORCH_THREADS GPU_PROMPT GPU_IMAGE GPU_PY GPU_BUDGET_S
# GPU_RT (where the runtime is unpacked), GPU_RESERVE_PCT (scales what each phase leaves for the later ones, for a
# budget below the default). The checkpoint and the compiled model stay in .bench/gpu/
# (git-ignored): a second call on the same warm machine reuses them and only measures.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export ROOT
DRY=${GPU_DRY_RUN:-0}
unset NODE
export OUT=${OUT:-$ROOT/.bench/gpu-out}
mkdir -p "$OUT"
export W_REL=.bench/gpu            # relative: the reference Python sees the repository as its cwd
export W=$ROOT/$W_REL
mkdir -p "$W/logs"
: >"$W/phases.tsv"
rm -f "$W"/ours.json "$W"/ours_kv_host.json "$W"/ours_int4.json "$W"/torch.json "$W"/torch_alone.json "$W"/probe.json "$W"/kernels.json "$W"/gpu_*.csv "$W"/logs/*.log
exec > >(tee -a "$OUT/run.log") 2>&1

if [ "$DRY" = 1 ]; then
  d_layers=2 d_graph=graphs/blip2-opt.blip d_ours=cpu d_tdev=cpu d_tdtype=float32 d_draw=cpu d_repeat=1
  d_threads=2 d_tthreads=2 d_py=../shared/oracle/py d_budget=2400 d_rt=/tmp/blip-gpu-rt-dry
else
  d_layers= d_graph=graphs/pinned/blip2-opt-2.7b.blip d_ours=webgpu d_tdev=cuda d_tdtype=float16 d_draw=cuda d_repeat=3
  d_threads=4 d_tthreads=4 d_py=python3 d_budget=530 d_rt=/tmp/blip-gpu-rt
fi
export LAYOUT=${GPU_LAYOUT:-blip2-opt-2.7b}
export LAYERS=${GPU_LAYERS-$d_layers}
export GRAPH=${GPU_GRAPH:-$d_graph}
export TARGET=${GPU_TARGET:-webgpu}
export OURS_DEVICE=${GPU_OURS_DEVICE:-$d_ours}
export TORCH_DEVICE=${GPU_TORCH_DEVICE:-$d_tdev}
export TORCH_DTYPE=${GPU_TORCH_DTYPE:-$d_tdtype}
export DRAW=${GPU_DRAW:-$d_draw}
export TOKENS=${GPU_TOKENS:-20}
export REPEAT=${GPU_REPEAT:-$d_repeat}
export THREADS=${GPU_THREADS:-$d_threads}
export TORCH_THREADS=${GPU_TORCH_THREADS:-$d_tthreads}
export PROMPT=${GPU_PROMPT-}
export IMAGE=${GPU_IMAGE:-test/fixtures/images/blocks_1000x700.png}
export PY=${GPU_PY:-$d_py}
export RT=${GPU_RT:-$d_rt}
BUDGET=${GPU_BUDGET_S:-$d_budget}
# What each phase leaves for the later ones is sized for the default budget; a shorter budget scales it down.
RESERVE_PCT=${GPU_RESERVE_PCT:-100}
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
START=$(date +%s)
DEADLINE=$((START + BUDGET))
export CARRY=$ROOT/.device/gpu

log() { echo "[gpu $(date -u +%H:%M:%S) +$(($(date +%s) - START))s] $*"; }

summarize() {
  [ -n "${NODE:-}" ] && [ -f "$RT/dist/bench/gpu/summary.js" ] && "$NODE" "$RT/dist/bench/gpu/summary.js" --work "$W" --out "$OUT" "$@" || true
}

# phase NAME CAP RESERVE 'COMMAND': run COMMAND (bash) with a timeout of min(CAP, time to the
# deadline - RESERVE), its output in $W/logs/NAME.log (last lines echoed), one row in phases.tsv.
phase() {
  local name=$1 cap=$2 reserve=$3 cmd=$4
  reserve=$((reserve * RESERVE_PCT / 100))
  local left=$((DEADLINE - $(date +%s) - reserve))
  local t=$((cap < left ? cap : left))
  if ((t < 5)); then
    log "phase $name: SKIPPED, no time left"
    printf '%s\tskipped\t0\t0\tno time left before the deadline\n' "$name" >>"$W/phases.tsv"
    return 125
  fi
  log "phase $name: start (timeout ${t} s)"
  local t0 rc st
  t0=$(date +%s)
  timeout -k 10 "$t" bash -c "$cmd" >"$W/logs/$name.log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  case $rc in 0) st=ok ;; 124 | 137) st=timeout ;; *) st="failed ($rc)" ;; esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$st" "$dt" "$t" "$(grep -v '^\s*$' "$W/logs/$name.log" | tail -n 1 | cut -c1-160 | tr '\t|' '  ')" >>"$W/phases.tsv"
  tail -n "${GPU_TAIL:-30}" "$W/logs/$name.log" | cut -c1-400 | sed "s/^/  [$name] /"
  log "phase $name: $st in ${dt} s"
  summarize
  return $rc
}

# .xz without xz(1), if need be (python3's lzma).
unxz_to() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
# a .deb's files under a folder, without dpkg if need be
deb_x() { if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; else (cd "$(mktemp -d)" && ar x "$1" && tar -xf data.tar.* -C "$2"); fi; }
export -f unxz_to deb_x

log "GPU check: dry run=$DRY layout=$LAYOUT${LAYERS:+ ($LAYERS layers)} graph=$GRAPH target=$TARGET ours=$OURS_DEVICE torch=$TORCH_DEVICE/$TORCH_DTYPE budget=${BUDGET}s out=$OUT"

# 1. runtime ------------------------------------------------------------------------------------
if [ -f "$CARRY/node.xz" ] && [ -f "$CARRY/app.tar.xz" ]; then
  phase unpack 90 300 '
    set -e; rm -rf "$RT"; mkdir -p "$RT"
    unxz_to "$CARRY/node.xz" >"$RT/node"; chmod +x "$RT/node"
    unxz_to "$CARRY/app.tar.xz" | tar -x -C "$RT"
    "$RT/node" --version; du -sh "$RT"; cat "$RT/PREPARED" 2>/dev/null || true' && export NODE=$RT/node
fi
# The carried build must be of these sources: a package prepared before the last change measures old code.
if [ -n "${NODE:-}" ]; then
  built=$(sed -n 's/^sources //p' "$RT/PREPARED" 2>/dev/null)
  here=$(bash bench/gpu/sources.sh)
  if [ "$built" != "$here" ]; then
    log "STALE: $CARRY/app.tar.xz was built from other sources (${built:-no fingerprint}) than this tree ($here): run bench/gpu/prepare.sh again"
    printf 'unpack\tstale\t0\t0\tthe carried build is not of this tree: run bench/gpu/prepare.sh again\n' >>"$W/phases.tsv"
    [ "$DRY" = 1 ] && exit 1
  fi
fi
if [ -z "${NODE:-}" ]; then
  log "no usable $CARRY/{node.xz,app.tar.xz} (run bench/gpu/prepare.sh here and carry .device/gpu): trying node, dist/ and node_modules/ of the tree"
  [ -f "$CARRY/node.xz" ] || printf 'unpack\tmissing\t0\t0\tnothing carried in .device/gpu\n' >>"$W/phases.tsv"
  export NODE=$(command -v node || echo node)
  export RT=$ROOT
fi
export DRY STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$NODE" -e 'const e = process.env; process.stdout.write(JSON.stringify({ dry_run: e.DRY, started: e.STARTED, layout: e.LAYOUT, layers: e.LAYERS, graph: e.GRAPH,
  target: e.TARGET, dtype: "fp16", checkpoint_dtype: "float16", ours_device: e.OURS_DEVICE, torch_device: e.TORCH_DEVICE, torch_dtype: e.TORCH_DTYPE,
  draw: e.DRAW, tokens: e.TOKENS, repeat: e.REPEAT, threads: e.THREADS, torch_threads: e.TORCH_THREADS, image: e.IMAGE, prompt: e.PROMPT, python: e.PY }, null, 2))' >"$W/settings.json" || true

# 2. Vulkan, adapter, versions --------------------------------------------------------------------
phase vulkan 60 300 '
  if [ "'"$DRY"'" != 1 ]; then
    if ls .gl/*.deb >/dev/null 2>&1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; echo "installed: $(ls .gl)"; else echo "no .gl/*.deb carried"; fi
  else echo "dry run: nothing installed into /"; fi
  ldconfig -p | grep -i libvulkan || echo "no libvulkan in ldconfig"
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d 2>/dev/null || true'
if [ "$DRY" != 1 ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  log "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

phase env 90 300 '
  {
    echo "== date"; date -u
    echo "== uname"; uname -a
    echo "== os"; grep PRETTY_NAME /etc/os-release
    echo "== cpu"; nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2
    echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv 2>&1 || true
    echo "== node"; "$NODE" --version; "$NODE" -p "process.arch"
    echo "== onnxruntime-node"; "$NODE" -p "require(\"$RT/node_modules/onnxruntime-node/package.json\").version" 2>&1
    echo "== python"; $PY -c "import sys, torch, transformers; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__, \"gpu\", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" 2>&1
    echo "== vulkaninfo --summary"
    if [ -d "$CARRY/vt" ]; then
      vt=$(mktemp -d); for f in "$CARRY"/vt/*.deb; do deb_x "$f" "$vt"; done
      LD_LIBRARY_PATH=$vt/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} timeout 30 "$vt/usr/bin/vulkaninfo" --summary 2>&1 | sed -n "/Vulkan Instance Version/p;/^Devices:/,\$p" | head -n 60
    else echo "vulkan-tools not carried"; fi
    echo "== WebGPU probe (onnxruntime-node, one Relu, verbose log lines about the device)"
    timeout 60 "$NODE" "$RT/dist/bench/gpu/probe.js" --device webgpu >"$W/probe.json" 2>/dev/null; cat "$W/probe.json"
    timeout 60 "$NODE" "$RT/dist/bench/gpu/probe.js" --device webgpu --verbose 2>&1 >/dev/null | grep -iE "OrtHardwareDevice|Context is created|power preference|backend type|adapter|device lost|vulkan|vk_|error" | cut -c1-300 | head -n 30
    if ! grep -q "\"ok\":true" "$W/probe.json"; then
      # Why the Vulkan loader found no driver: its own account, and what the ICD library lacks.
      echo "== no adapter: the Vulkan loader on the ICD (VK_LOADER_DEBUG=error,warn,driver)"
      VK_LOADER_DEBUG=error,warn,driver timeout 60 "$NODE" "$RT/dist/bench/gpu/probe.js" --device webgpu 2>&1 >/dev/null | grep -iE "error|fail|unable|cannot|not found|ICD drivers named|Found ICD|dlopen" | grep -v "MESA_device_select" | cut -c1-300 | head -n 25
      for j in ${VK_DRIVER_FILES:-} /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do [ -f "$j" ] && { echo "-- $j"; cat "$j"; }; done
      lib=$(sed -n "s/.*\"library_path\": *\"\([^\"]*\)\".*/\1/p" ${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/nvidia_icd.json} 2>/dev/null | head -1)
      [ -n "$lib" ] && { p=$(ldconfig -p | awk -v l="$lib" "\$1 == l { print \$NF; exit }"); echo "-- ldd ${p:-$lib}"; ldd "${p:-$lib}" 2>&1 | grep -E "not found|GL|vulkan" | head -n 15; }
    fi
  } >"$OUT/env.txt" 2>&1
  cat "$OUT/env.txt"'

# What a node costs on the provider, and whether its MultiHeadAttention is right (bench/gpu/kernels.ts).
phase kernels 60 240 '"$NODE" "$RT/dist/bench/gpu/kernels.js" --device "$OURS_DEVICE" --json "$W/kernels.json"'

# 3. checkpoint ---------------------------------------------------------------------------------
KEY="$LAYOUT layers=${LAYERS:-all} float16"
if [ -f "$W/ckpt/.complete" ] && [ "$(cat "$W/ckpt/.complete")" = "$KEY" ]; then
  log "checkpoint: reusing $W_REL/ckpt ($KEY)"
  printf 'make\treused\t0\t0\t%s\n' "$KEY" >>"$W/phases.tsv"
  cp -f "$W/logs/make.kept" "$W/logs/make.log" 2>/dev/null || true
else
  rm -rf "$W/ckpt" "$W/compiled"
  phase make 240 240 "set -e
    $PY test/oracle/make_fullsize_blip2.py $LAYOUT --dtype float16 --device $DRAW --out $W_REL/ckpt ${LAYERS:+--layers $LAYERS}
    echo '$KEY' >$W/ckpt/.complete; du -sh $W/ckpt" && cp -f "$W/logs/make.log" "$W/logs/make.kept"
fi

phase view 30 200 '"$NODE" "$RT/dist/bench/gpu/view.js" --ckpt "$W/ckpt" --view "$W/view" --tokenizer-from test/fixtures/blip2-opt-a/checkpoint --image-token-index 476 --image-size 224 --queries 32 && ls -la "$W/view"'

# 4. compile, with PyTorch alongside ------------------------------------------------------------
torch_cmd() { # output file
  echo "$PY bench/torch_generate.py --ckpt $W_REL/view --image $IMAGE ${PROMPT:+--prompt \"$PROMPT\"} --device $TORCH_DEVICE --dtype $TORCH_DTYPE --threads $TORCH_THREADS --batch 1 --max-new-tokens $TOKENS --repetition-penalty 1 --repeat $REPEAT --warmup 1 >$1"
}
ours_cmd() { # compiled dir, output file, extra flags: bench/ours.ts, its JSON kept and echoed into the phase log
  echo "\"\$NODE\" \"\$RT/dist/bench/ours.js\" --dir $1 --image $IMAGE ${PROMPT:+--prompt \"$PROMPT\"} --threads $THREADS --batch 1 --tokens $TOKENS --repetition-penalty 1 --repeat $REPEAT --device $OURS_DEVICE ${3:-} >$2; rc=\$?; cat $2; exit \$rc"
}
( phase torch 240 170 "$(torch_cmd "$W/torch.json")" ) &
TORCH_PID=$!

CKEY="$KEY $GRAPH fp16 $TARGET compiler $(sed -n 's/^sources //p' "$RT/PREPARED" 2>/dev/null || echo tree)"  # a compiler change recompiles
if [ -f "$W/compiled/.complete" ] && [ "$(cat "$W/compiled/.complete")" = "$CKEY" ]; then
  log "compiled model: reusing $W_REL/compiled ($CKEY)"
  printf 'compile\treused\t0\t0\t%s\n' "$CKEY" >>"$W/phases.tsv"
  cp -f "$W/logs/compile.kept" "$W/logs/compile.log" 2>/dev/null || true
else
  TIMEV=; [ -x /usr/bin/time ] && TIMEV="/usr/bin/time -v"
  phase compile 330 150 "set -e; rm -rf $W/compiled
    $TIMEV \"\$NODE\" \"\$RT/bin/blip.js\" compile $GRAPH --weights $W/view --out $W/compiled --dtype fp16 --target $TARGET 2>$W/logs/compile.time || { cat $W/logs/compile.time; exit 1; }
    grep -E 'Elapsed|Maximum resident|User time|System time' $W/logs/compile.time || true
    echo '$CKEY' >$W/compiled/.complete; ls -la $W/compiled" && cp -f "$W/logs/compile.log" "$W/logs/compile.kept"
fi
log "waiting for the PyTorch phase"
wait "$TORCH_PID"

# 5. blip-graph ---------------------------------------------------------------------------------
SAMPLER=
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 250 >"$W/gpu_ours.csv" 2>/dev/null &
  SAMPLER=$!
fi
phase ours 300 15 "$(ours_cmd "$W/compiled" "$W/ours.json")"
[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
if [ -s "$W/gpu_ours.csv" ]; then
  log "GPU during blip-graph: max memory.used $(cut -d, -f2 "$W/gpu_ours.csv" | sort -n | tail -1) MiB, max utilization $(cut -d, -f3 "$W/gpu_ours.csv" | sort -n | tail -1) %"
fi

# The same on WebGPU with the KV cache through the host between steps (load(..., { kvOnDevice: false })).
if [ "$OURS_DEVICE" = webgpu ]; then
  phase ours_kv_host 120 10 "$(ours_cmd "$W/compiled" "$W/ours_kv_host.json" "--kv-on-device 0")"
fi

# Weight-only int4 (--quantize int4: MatMulNBits) of the same checkpoint on the same provider: the
# decode's products then read a quarter of the float16 bytes (on the H100, WebGPU's one-row float16
# MatMul read 158 GB/s: docs/webgpu.md). Compiled once per build, like the float16 model.
QKEY="$CKEY int4"
if [ -f "$W/compiled_int4/.complete" ] && [ "$(cat "$W/compiled_int4/.complete")" = "$QKEY" ]; then
  log "int4 model: reusing $W_REL/compiled_int4"
  printf 'compile_int4\treused\t0\t0\t%s\n' "$QKEY" >>"$W/phases.tsv"
else
  phase compile_int4 240 60 "set -e; rm -rf $W/compiled_int4
    \"\$NODE\" \"\$RT/bin/blip.js\" compile $GRAPH --weights $W/view --out $W/compiled_int4 --dtype fp16 --quantize int4 --target $TARGET
    echo '$QKEY' >$W/compiled_int4/.complete"
fi
if [ -f "$W/compiled_int4/.complete" ]; then
  phase ours_int4 120 10 "$(ours_cmd "$W/compiled_int4" "$W/ours_int4.json")"
fi

# 6. PyTorch alone, if time is left -------------------------------------------------------------
if (($(date +%s) + 90 < DEADLINE)); then
  phase torch_alone 200 10 "$(torch_cmd "$W/torch_alone.json")"
else
  log "no time left for PyTorch alone"
  printf 'torch_alone\tskipped\t0\t0\tless than 90 s left\n' >>"$W/phases.tsv"
fi

# summary ---------------------------------------------------------------------------------------
summarize
tar -czf "$OUT/logs.tar.gz" -C "$W" logs phases.tsv $(cd "$W" && ls ./*.json ./*.csv 2>/dev/null) 2>/dev/null || true
log "done in $(($(date +%s) - START)) s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
echo
cat "$OUT/summary.md" 2>/dev/null || echo "(no summary: node did not run)"
sleep 1 # let tee write run.log out
