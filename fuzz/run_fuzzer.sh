#!/usr/bin/env bash
# Compiles one libFuzzer target and runs it (see fuzz/defs.bzl).
#
# Runs in the test's runfiles root, which is the workspace root for includes.
# With --findings=DIR it first replays every file of DIR (earlier findings)
# once each, under the same sanitizers and a 1 GiB malloc limit, and fails if
# any of them crashes, trips a sanitizer or allocates more.
# Prints "fuzz <name>: <N> executions, <C> crashes, corpus <K> inputs, ..."
# and exits non-zero on a compile error or any crash / sanitizer finding;
# the crashing input is left in the test's undeclared outputs (bazel-testlogs/
# .../test.outputs/) to turn into a regression test.
set -euo pipefail

name="" src="" max_total_time=20 max_len=0 libs="" dict="" findings=""
for arg in "$@"; do
  case "$arg" in
    --name=*) name="${arg#*=}" ;;
    --src=*) src="${arg#*=}" ;;
    --max_total_time=*) max_total_time="${arg#*=}" ;;
    --max_len=*) max_len="${arg#*=}" ;;
    --libs=*) libs="${arg#*=}"; libs="${libs//,/ }" ;;  # comma-separated flags
    --dict=*) dict="${arg#*=}" ;;
    --findings=*) findings="${arg#*=}" ;;
    *) echo "run_fuzzer.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

cxx="${SPATIALID_FUZZ_CXX:-}"
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz $name: clang++ not found (Debian: clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi

work="${TEST_TMPDIR:-$(mktemp -d)}/fuzz_$name"
rm -rf "$work"
mkdir -p "$work/corpus"
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}"
mkdir -p "$artifacts"

start=$(date +%s)
# shellcheck disable=SC2086  # $libs is a list of flags
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I. "$src" -o "$work/$name" $libs
compiled=$(date +%s)

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Earlier findings first: each file run once (libFuzzer runs file arguments
# and exits). A finding must decode or be refused, never crash, and never
# make the target ask for more than 1 GiB at once.
nfindings=0
if [ -n "$findings" ]; then
  mapfile -t finding_files < <(find -L "$findings" -type f | sort)
  nfindings=${#finding_files[@]}
  if [ "$nfindings" -eq 0 ]; then
    echo "fuzz $name: --findings=$findings holds no file" >&2
    exit 1
  fi
  set +e
  "$work/$name" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=25 "${finding_files[@]}" \
    >"$work/findings.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "fuzz $name: replaying the $nfindings finding(s) of $findings failed (exit $rc)"
    tail -60 "$work/findings.log"
    exit 1
  fi
  echo "fuzz $name: replayed $nfindings finding(s) of $findings, none crashed"
fi

seeds="fuzz/corpus/$name"
nseeds=0
if [ -d "$seeds" ]; then nseeds=$(find -L "$seeds" -type f | wc -l); fi

flags=(-max_total_time="$max_total_time" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048
       -artifact_prefix="$artifacts/$name-")
if [ "$max_len" -gt 0 ]; then flags+=(-max_len="$max_len"); fi
if [ -n "$dict" ]; then flags+=(-dict="$dict"); fi
corpora=("$work/corpus")
if [ "$nseeds" -gt 0 ]; then corpora+=("$seeds"); fi

set +e
"$work/$name" "${flags[@]}" "${corpora[@]}" >"$work/log" 2>&1
rc=$?
set -e

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' | tail -1)
execs=${execs:-0}
crashes=$(find "$artifacts" -maxdepth 1 -name "$name-*" -type f | wc -l)
corpus=$(find "$work/corpus" -type f | wc -l)
cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*')
echo "fuzz $name: $execs executions, $crashes crashes, corpus $nseeds seeds + $corpus new inputs," \
     "coverage ${cov:-?} edges, ${max_total_time}s budget (compile $((compiled - start))s, exit $rc)"
if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
  echo "--- libFuzzer log (last 80 lines) ---"
  tail -80 "$work/log"
  for f in "$artifacts/$name"-*; do
    [ -f "$f" ] || continue
    echo "--- reproducer $f (base64) ---"
    base64 "$f" | head -40
  done
  exit 1
fi
