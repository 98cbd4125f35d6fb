#!/usr/bin/env bash
# Run HERE (x86-64 Linux, with npm's node_modules installed and apt reachable) before the GPU call of
# bench/gpu/run.sh. Puts what the GPU machine lacks into git-ignored folders that the device tool's
# `carry` takes along (64 MiB in all, the working tree included):
#
#   .device/gpu/node.xz      this machine's Node (>= 20, x86-64), stripped, xz
#   .device/gpu/app.tar.xz   dist/ (built now: src, runtime, bench, grammar), bin/, package.json and
#                            the production node_modules (npm ls --omit=dev), onnxruntime-node with
#                            its linux/x64 binaries only (libonnxruntime.so.1 holds the CPU and WebGPU
#                            providers), without what compile / run / bench never load (the capfilt
#                            queue's bullmq + ioredis trees, tar-stream's bare-* modules, protobufjs'
#                            cli): the dry run (GPU_DRY_RUN=1) proves the rest suffices. Not the CUDA / TensorRT providers: onnxruntime-node fetches
#                            those from NuGet, which neither machine can reach, so --device cuda is
#                            not part of the check.
#   .device/gpu/vt/*.deb     vulkan-tools and the libraries vulkaninfo needs (unpacked under /tmp
#                            there, only to read the adapter)
#   .gl/libvulkan1_*.deb     the Vulkan loader (the device README's recipe; unpacked into / there)
#
# and prints every size against the budget. Options: --no-build (use dist/ as it is).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=1
[ "${1:-}" = --no-build ] && BUILD=0
D=.device/gpu
EXCLUDE=$(git rev-parse --git-path info/exclude)
for p in /.device/ /.gl/; do grep -qxF "$p" "$EXCLUDE" || echo "$p" >>"$EXCLUDE"; done
mkdir -p "$D/vt" .gl
say() { echo "[prepare] $*"; }

arch=$(node -p process.arch)
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$arch" = x64 ] || { echo "node here is $arch: the GPU machine is x86-64; build these on an x86-64 machine" >&2; exit 1; }
[ "$major" -ge 20 ] || { echo "node here is $(node --version); need >= 20" >&2; exit 1; }

# 1. Node ---------------------------------------------------------------------------------------
NODE_BIN=$(readlink -f "$(command -v node)")
# xz's x86 filter (BCJ) before LZMA2 makes executables ~9 % smaller; xz -d and Python's lzma undo it.
XZ_BIN='--x86 --lzma2=preset=9e'
if [ ! -f "$D/node.xz" ] || [ "$(cat "$D/node.version" 2>/dev/null)" != "$(node --version) $NODE_BIN $XZ_BIN" ]; then
  say "node $(node --version) from $NODE_BIN: strip + xz $XZ_BIN"
  tmp=$(mktemp)
  strip -o "$tmp" "$NODE_BIN" 2>/dev/null || cp "$NODE_BIN" "$tmp"
  ldd "$tmp" | grep -q 'not found' && { echo "node needs libraries not found here" >&2; exit 1; }
  xz $XZ_BIN -T2 -c "$tmp" >"$D/node.xz.part" && mv "$D/node.xz.part" "$D/node.xz"
  rm -f "$tmp"
  echo "$(node --version) $NODE_BIN $XZ_BIN" >"$D/node.version"
else
  say "node.xz up to date ($(cat "$D/node.version"))"
fi

# 2. blip-graph: dist + production node_modules -------------------------------------------------
if [ "$BUILD" = 1 ]; then
  say "building (tsc)"
  # tsc writes dist/ even when it reports errors; errors in the code that travels stop here, errors
  # in test files (other work in progress in this tree) only warn.
  if ! tsc_out=$(npx tsc -p tsconfig.json 2>&1); then
    echo "$tsc_out" | grep -v '^npm warn' | head -n 20
    if echo "$tsc_out" | grep -qE '^(src|runtime|bench|grammar)/'; then echo "tsc errors in the code that travels" >&2; exit 1; fi
    say "tsc errors in test files only: dist/ of src, runtime, bench and grammar was written"
  fi
fi
for f in dist/src/cli/main.js dist/bench/ours.js dist/bench/gpu/run.js dist/bench/gpu/summary.js dist/bench/gpu/view.js dist/bench/gpu/probe.js; do
  [ "$f" = dist/bench/gpu/run.js ] && continue
  [ -f "$f" ] || { echo "$f is missing: build first (npx tsc -p tsconfig.json)" >&2; exit 1; }
done
list=$(mktemp)
SKIP='^node_modules/(bullmq|ioredis|@ioredis|cron-parser|luxon|msgpackr|msgpackr-extract|@msgpackr-extract|node-abort-controller|bare-[a-z]+)(/|$)'
npm ls --omit=dev --parseable --all 2>/dev/null | sed "s|^$ROOT/||" | grep '^node_modules/' | grep -Ev "$SKIP" | sort -u >"$list"
say "$(wc -l <"$list") production packages"
{
  echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src runtime bench || echo ' + uncommitted changes')"
  echo "node $(node --version), onnxruntime-node $(node -p 'require("onnxruntime-node/package.json").version')"
  echo "sources $(bash bench/gpu/sources.sh)"
} >PREPARED
tar -cf - --exclude='*.map' --exclude='*.d.ts' --exclude='*.md' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' --exclude='node_modules/protobufjs/cli' \
  PREPARED package.json bin dist/src dist/runtime dist/bench dist/grammar $(cat "$list") | xz $XZ_BIN -T2 >"$D/app.tar.xz.part"
mv "$D/app.tar.xz.part" "$D/app.tar.xz"
rm -f PREPARED "$list"

# 3. Vulkan loader (.gl, into / there) and vulkaninfo (.device/gpu/vt, under /tmp there) ------------
apt_dl() { # dir pkgs...: the device README's recipe (amd64 lists of their own)
  local dir=$1; shift
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  [ -n "$(ls /tmp/amd64/*Packages* 2>/dev/null)" ] || apt-get $o update >/dev/null
  (cd "$dir" && apt-get $o download "$@" >/dev/null)
}
# The device README's recipe: the Vulkan loader and glvnd's libraries (NVIDIA's ICD, libGLX_nvidia.so.0,
# loads through glvnd; with libvulkan1 alone Dawn found no adapter on the H100 machine).
GL_PKGS="libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2"
for p in $GL_PKGS; do ls .gl/${p}_*.deb >/dev/null 2>&1 || { say "downloading $p into .gl"; apt_dl .gl $p; }; done
ls "$D"/vt/vulkan-tools_*.deb >/dev/null 2>&1 || {
  say "downloading vulkan-tools (+ libraries) into $D/vt"
  apt_dl "$D/vt" vulkan-tools libwayland-client0 libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libffi8
}

# 4. sizes --------------------------------------------------------------------------------------
bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
node_b=$(bytes "$D/node.xz") app_b=$(bytes "$D/app.tar.xz") vt_b=$(bytes "$D/vt") gl_b=$(bytes .gl)
carry_b=$(bytes "$D" .gl)
total=$((tree + carry_b))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo
echo "what travels                                 size"
printf '  %-42s %s\n' "working tree (tracked + untracked, not ignored)" "$(mib "$tree")" \
  "$D/node.xz" "$(mib "$node_b")" "$D/app.tar.xz" "$(mib "$app_b")" "$D/vt/ ($(ls "$D/vt" | wc -l) debs)" "$(mib "$vt_b")" \
  ".gl/ ($(ls .gl | tr '\n' ' '))" "$(mib "$gl_b")" "total (limit 64 MiB)" "$(mib "$total")"
if [ "$total" -gt $((64 * 1048576)) ]; then
  echo "OVER the 64 MiB limit: the call would be refused" >&2
  exit 1
fi
echo
echo "then, with the device tool:  run(command=\"bash bench/gpu/run.sh\", carry=[\"$D\", \".gl\"], timeout_s=600)"
