#!/usr/bin/env bash
# Builds spatialid's binaries without Bazel: g++ on the header-only library,
# against the machine's own libtorch, with every other dependency taken from
# third_party/carry/ (headers and static libraries unpacked from pinned
# Debian packages by tools/make_carry.sh). For a machine that has only g++,
# (optionally) CUDA and a Python with torch, such as a lent GPU machine: no
# Bazel, no network, no dev packages.
#
# libtorch: $LIBTORCH_PATH (a folder with include/ and lib/), else the torch
# package of $PYTHON (default: $SPATIALID_PYTHON, else python3). Its CUDA
# libraries are linked when it has them, without --as-needed, exactly as
# third_party/libtorch.bzl does, so one binary serves CPU and GPU.
#
# Compiles every translation unit in parallel on all cores, then links. An
# object is reused when its compile command and the contents of every file
# its previous compile read (the -MMD dependency list) are unchanged, so a
# rebuild, or a CI run that keeps --out between runs, compiles only what
# changed.
#
# Usage: tools/build_without_bazel.sh [--out DIR] [--jobs N] [TARGET...]
#   (environment: LIBTORCH_PATH, PYTHON, CXX, EXTRA_LDFLAGS)
#   TARGET: a name from the lists below (default: all of them), e.g.
#           small_id_grid llava_forward_cli
# Binaries land in DIR/bin (default DIR: build/nobazel).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- what gets built: edit these lists --------------------------------------
# name=main source [extra objects]; "experiment_main" and "stb" are the two
# shared translation units below.
TARGETS=(
  "grid_data=examples/grid_data.cc stb"
  "extraction_data=examples/extraction_data.cc stb"
  "small_id_grid=examples/small_id_grid.cc experiment_main stb"
  "batch_extraction=examples/batch_extraction.cc experiment_main stb"
  "merge_shards=examples/merge_shards.cc"
  "fig5=examples/fig5.cc stb"
  # What the build's libtorch offers for CUDA (tools/gpu_check.sh runs it first).
  "device_probe=tools/device_probe.cc"
)
# The per-family forward tools the oracle tests drive: every
# tests/families/<family>_forward_cli.cc, so a new family needs no entry here.
for tool_source in "$repo"/tests/families/*_forward_cli.cc; do
  tool=$(basename "$tool_source" .cc)
  TARGETS+=("$tool=tests/families/$tool.cc stb")
done
SHARED_UNITS=(
  "experiment_main=examples/experiment_main.cc"
  "stb=third_party/stb/stb_impl.cc"
)

out="$repo/build/nobazel"
jobs=$(nproc)
wanted=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --out=*) out=$(mkdir -p "${1#--out=}" && cd "${1#--out=}" && pwd); shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --jobs=*) jobs=${1#--jobs=}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "build_without_bazel: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) wanted+=("$1"); shift ;;
  esac
done
say() { printf '[build_without_bazel] %s\n' "$*" >&2; }

# --- libtorch ------------------------------------------------------------------
PYTHON=${PYTHON:-${SPATIALID_PYTHON:-python3}}
abi=1
if [ -n "${LIBTORCH_PATH:-}" ]; then
  torch=$LIBTORCH_PATH
else
  read -r abi torch < <("$PYTHON" -c 'import os, torch
print(int(torch._C._GLIBCXX_USE_CXX11_ABI), os.path.dirname(torch.__file__))') || true
  [ -n "${torch:-}" ] || { say "no libtorch: set LIBTORCH_PATH, or PYTHON to a python with torch"; exit 1; }
fi
for sub in include lib; do
  [ -d "$torch/$sub" ] || { say "libtorch at $torch has no $sub/ folder"; exit 1; }
done
has_cuda=0
[ -f "$torch/lib/libtorch_cuda.so" ] && [ -f "$torch/lib/libc10_cuda.so" ] && has_cuda=1
carry="$repo/third_party/carry"
[ -f "$carry/MANIFEST" ] || { say "$carry is missing (tools/make_carry.sh makes it)"; exit 1; }

CXX=${CXX:-g++}
cxxflags=(-std=c++20 -O2 -pthread -fdiagnostics-color=never -Wno-deprecated-declarations
  "-D_GLIBCXX_USE_CXX11_ABI=$abi" -I "$repo" -I "$carry/include"
  -isystem "$torch/include" -isystem "$torch/include/torch/csrc/api/include")
ldflags=(-pthread -L "$torch/lib" "-Wl,-rpath,$torch/lib" "-Wl,-rpath,$carry/lib")
# libtorch's libraries NEED the wheel's CUDA runtime (nvidia/*/lib); the
# linker must find those even though nothing here links them directly.
if [ -d "$torch/../nvidia" ]; then
  while IFS= read -r d; do ldflags+=("-Wl,-rpath-link,$d"); done < <(find -L "$torch/../nvidia" -mindepth 2 -maxdepth 3 -type d -name lib | sort)
fi
libs=(-Wl,--start-group "$carry"/lib/libabsl_*.a -Wl,--end-group
  "$carry/lib/libjpeg.a" "$carry/lib/libz.a" "$carry/lib/libutf8proc.a" "$carry/lib/libonig.so.5"
  -ltorch_cpu -lc10)
[ $has_cuda -eq 1 ] && libs+=(-Wl,--push-state,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--pop-state)
libs+=(-latomic -ldl -lrt -lm)
# Extra link flags from the environment (e.g. -Wl,--allow-shlib-undefined to
# link against a libtorch whose CUDA runtime is not installed here).
read -r -a extra_ldflags <<< "${EXTRA_LDFLAGS:-}"
libs+=("${extra_ldflags[@]}")

# --- which units and binaries ---------------------------------------------------
declare -A main_of extras_of unit_src
for t in "${TARGETS[@]}"; do
  name=${t%%=*}; rest=${t#*=}
  main_of[$name]=${rest%% *}
  extras_of[$name]=$( [ "$rest" = "${rest#* }" ] && echo "" || echo "${rest#* }")
done
for u in "${SHARED_UNITS[@]}"; do unit_src[${u%%=*}]=${u#*=}; done
[ ${#wanted[@]} -eq 0 ] && for t in "${TARGETS[@]}"; do wanted+=("${t%%=*}"); done
declare -A units
for name in "${wanted[@]}"; do
  [ -n "${main_of[$name]:-}" ] || { say "unknown target $name (known: ${!main_of[*]})"; exit 2; }
  units[$name]=${main_of[$name]}
  for e in ${extras_of[$name]}; do units[$e]=${unit_src[$e]}; done
done

mkdir -p "$out/obj" "$out/bin"
say "libtorch $torch ($([ $has_cuda -eq 1 ] && echo "with CUDA" || echo "CPU only")); $CXX $("$CXX" -dumpfullversion); $jobs jobs; ${#units[@]} units -> $out"

# The key of an object: its compile command, libtorch's identity and the
# contents of every file the last compile of it read.
key_of() {
  local unit=$1 src=$2
  {
    printf '%s\n' "$CXX" "${cxxflags[@]}" "$src" "$torch"
    stat -c '%s %Y' "$torch/lib/libtorch_cpu.so"
    if [ -f "$out/obj/$unit.d" ]; then
      # A file that no longer exists makes sha256sum fail, and the key differ.
      sed -e 's/\\$//' -e 's/^[^:]*://' "$out/obj/$unit.d" | tr ' ' '\n' | sed '/^$/d' | sort -u |
        (cd "$repo" && xargs -d '\n' sha256sum 2>&1 || true)
    fi
  } | sha256sum | cut -d' ' -f1
}

compile_one() {
  local unit=$1 src=$2
  local obj="$out/obj/$unit.o"
  if [ -f "$obj" ] && [ -f "$out/obj/$unit.key" ] && [ "$(key_of "$unit" "$src")" = "$(cat "$out/obj/$unit.key")" ]; then
    echo "[build_without_bazel] up to date: $src" >&2
    return 0
  fi
  local start=$SECONDS
  if ! (cd "$repo" && "$CXX" "${cxxflags[@]}" -MMD -MF "$out/obj/$unit.d" -c "$src" -o "$obj.tmp" 2> "$out/obj/$unit.log"); then
    cat "$out/obj/$unit.log" >&2
    echo "[build_without_bazel] FAILED: $src" >&2
    return 1
  fi
  mv "$obj.tmp" "$obj"
  # The key is taken after the compile, from the files it just read.
  key_of "$unit" "$src" > "$out/obj/$unit.key"
  echo "[build_without_bazel] compiled $src in $((SECONDS - start)) s" >&2
}

# Longest first: experiment_main instantiates every family.
order=()
[ -n "${units[experiment_main]:-}" ] && order+=(experiment_main)
for u in "${!units[@]}"; do [ "$u" != experiment_main ] && order+=("$u"); done
start=$SECONDS
pids=(); failed=0
running=0
for u in "${order[@]}"; do
  compile_one "$u" "${units[$u]}" &
  pids+=($!); running=$((running + 1))
  if [ $running -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ $running -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ $failed -eq 0 ] || { say "compilation failed"; exit 1; }
say "compiled in $((SECONDS - start)) s"

link_one() {
  local name=$1
  local objs=("$out/obj/$name.o")
  for e in ${extras_of[$name]}; do objs+=("$out/obj/$e.o"); done
  if ! "$CXX" -o "$out/bin/$name.tmp" "${objs[@]}" "${ldflags[@]}" "${libs[@]}" 2> "$out/obj/$name.link.log"; then
    cat "$out/obj/$name.link.log" >&2
    echo "[build_without_bazel] LINK FAILED: $name" >&2
    return 1
  fi
  mv "$out/bin/$name.tmp" "$out/bin/$name"
}
start=$SECONDS
pids=(); running=0
for name in "${wanted[@]}"; do
  link_one "$name" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
done
while [ $running -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ $failed -eq 0 ] || { say "linking failed"; exit 1; }
say "linked ${#wanted[@]} binaries in $((SECONDS - start)) s: $out/bin"
