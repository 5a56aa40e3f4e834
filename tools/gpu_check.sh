#!/usr/bin/env bash
# tools/gpu_check.sh: what a GPU machine can tell about spatialid, in one run.
#
# For anyone with an NVIDIA GPU, g++ and a Python with torch and transformers
# (no Bazel, no network needed). In order, printing results as it goes:
#   1. builds the example binaries, tools/device_probe and the per-family
#      forward tools with tools/build_without_bazel.sh against that Python's
#      libtorch (all cores);
#   2. asks device_probe whether the build registered CUDA and sees the GPU;
#   3. runs every family's oracle against transformers
#      (python tests/families/<family>_oracle_test.py, fp32 and bf16 cases)
#      with SPATIALID_ORACLE_DEVICE set to the device and
#      SPATIALID_FORWARD_CLI_DIR to the script-built forward tools;
#   4. runs benchmarks/side_by_side.py on each model of MODELS, llava-7b
#      first: a full-size random-weight checkpoint made on the GPU by
#      transformers from the real config (tools/real_models/), then the
#      reference recipe, the best transformers setup and spatialid (planned
#      and plain engines): images/s, ratios, peak GPU memory, the fraction of
#      the dense bf16 peak, the projected time of the 86,400-image extraction;
#      each model's checkpoint is deleted after its run (disk).
# Writes gpu_check.md (summary), gpu_check.json and gpu_check.log to $OUT
# when set (else build/gpu_check/), three files, as a lent GPU machine
# returns at most eight.
#
# Time: --budget_s bounds the whole run (default 780 s, for a 15-minute
# lease); the build and the probe take what they take, the oracles get
# ORACLE_SHARE of what is left, the models share the rest in order.
#
# Usage: tools/gpu_check.sh [--device=cuda|cpu] [--tiny] [--budget_s=N]
#                           [--models=llava-7b,qwen-7b] [--oracles=llava,gemma3]
#                           [--skip_oracles] [--skip_side_by_side]
#   --tiny  the families' tiny test models instead of full-size ones: runs every
#           code path but CUDA's on a CPU (--device=cpu --tiny), as CI machines can.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# --- what gets run: edit these lists -------------------------------------------------
BINARIES=(small_id_grid batch_extraction grid_data extraction_data merge_shards fig5 device_probe)
# Every family's oracle and forward tool (tests/families/<family>_oracle_test.py
# and <family>_forward_cli.cc): a new family is found without an entry here.
ORACLES=()
FORWARD_TOOLS=()
for oracle_test in tests/families/*_oracle_test.py; do
  family=$(basename "$oracle_test" _oracle_test.py)
  ORACLES+=("$family")
  FORWARD_TOOLS+=("${family}_forward_cli")
done
MODELS=(llava-7b qwen-7b internvl-8b gemma-12b llama-11b)
ORACLE_SHARE=0.35

device=cuda
tiny=0
budget=780
skip_oracles=0
skip_sbs=0
for arg in "$@"; do
  case "$arg" in
    --device=*) device=${arg#--device=} ;;
    --tiny) tiny=1 ;;
    --budget_s=*) budget=${arg#--budget_s=} ;;
    --models=*) IFS=, read -r -a MODELS <<< "${arg#--models=}" ;;
    --oracles=*) IFS=, read -r -a ORACLES <<< "${arg#--oracles=}" ;;
    --skip_oracles) skip_oracles=1 ;;
    --skip_side_by_side) skip_sbs=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-${SPATIALID_PYTHON:-python3}}
out=${OUT:-$repo/build/gpu_check}
work=${GPU_CHECK_WORK:-$repo/build/gpu_check_work}
mkdir -p "$out" "$work"
logfile="$out/gpu_check.log"
: > "$logfile"
summary="$work/summary.md"
: > "$summary"
start=$SECONDS
say() { printf '[gpu_check %4ds] %s\n' $((SECONDS - start)) "$*" | tee -a "$logfile" >&2; }
note() { printf '%s\n' "$*" >> "$summary"; }
left() { echo $((budget - (SECONDS - start))); }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

# --- 0. the machine ---------------------------------------------------------------------
note "# gpu_check ($(date -u '+%Y-%m-%d %H:%M UTC'), device $device$([ $tiny -eq 1 ] && echo ', tiny models'))"
note ""
{
  echo '```'
  (command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader) || echo "no nvidia-smi"
  "$PYTHON" -c 'import torch, transformers, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1 | tail -1
  "${CXX:-g++}" --version | head -1
  echo "cores $(nproc), memory $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo '```'
} >> "$summary"
cat "$summary" >&2

# Tokenizer files and object images: the installed assets, else the copies
# carried in the tree (xz-compressed tokenizers, the openmoji PNGs).
if [ -z "${SPATIALID_ASSETS:-}" ] || [ ! -f "$SPATIALID_ASSETS/tokenizers/llama2/tokenizer.json" ]; then
  export SPATIALID_ASSETS="$work/assets"
  "$PYTHON" - "$repo/tools/gpu_check/assets/tokenizers" "$SPATIALID_ASSETS/tokenizers" <<'EOF'
import lzma, os, sys
src, dst = sys.argv[1:]
for name in sorted(os.listdir(src)):
    os.makedirs(os.path.join(dst, name), exist_ok=True)
    for f in os.listdir(os.path.join(src, name)):
        if f.endswith(".xz") and not os.path.exists(os.path.join(dst, name, f[:-3])):
            with lzma.open(os.path.join(src, name, f)) as i, open(os.path.join(dst, name, f[:-3]), "wb") as o:
                o.write(i.read())
EOF
fi
objects="$repo/data/objects"
[ -f "$objects/camel.png" ] || objects="$repo/tools/gpu_check/assets/objects"

# --- 1. build ------------------------------------------------------------------------------
build="$work/build"
say "building ${BINARIES[*]} ${FORWARD_TOOLS[*]} without Bazel"
t0=$SECONDS
if PYTHON=$PYTHON tools/build_without_bazel.sh --out="$build" "${BINARIES[@]}" "${FORWARD_TOOLS[@]}" >> "$logfile" 2>&1; then
  say "build: $((SECONDS - t0)) s"
  note ""; note "Build without Bazel: $((SECONDS - t0)) s ($(nproc) cores)."
else
  say "build FAILED (see gpu_check.log)"
  note ""; note "Build without Bazel FAILED after $((SECONDS - t0)) s:"; note '```'; tail -30 "$logfile" >> "$summary"; note '```'
  cp "$summary" "$out/gpu_check.md"
  exit 1
fi

# --- 2. the device ------------------------------------------------------------------------
probe=$("$build/bin/device_probe" "$device")
probe_rc=$?
say "device_probe $device: $probe"
note ""; note "device_probe $device: \`$probe\`"
if [ $probe_rc -ne 0 ]; then
  note ""; note "The device cannot be used; nothing else was run."
  cp "$summary" "$out/gpu_check.md"
  exit 1
fi

# --- 3. the family oracles -------------------------------------------------------------------
results_json="$work/results.jsonl"
: > "$results_json"
if [ $skip_oracles -eq 0 ]; then
  # Today's oracle tests find their forward tool through Bazel's runfiles
  # (TEST_SRCDIR); a runfiles-shaped folder of links serves them outside
  # Bazel, and SPATIALID_FORWARD_CLI_DIR serves the ones that read it.
  runfiles="$work/runfiles"
  mkdir -p "$runfiles/spatialid/tests/families"
  for t in "${FORWARD_TOOLS[@]}"; do ln -sfn "$build/bin/$t" "$runfiles/spatialid/tests/families/$t"; done
  oracle_budget=$(awk -v l="$(left)" -v s="$ORACLE_SHARE" -v n=${#ORACLES[@]} 'BEGIN { b = l * s / n; print (b < 60 ? 60 : int(b)) }')
  note ""; note "## Family oracles against transformers (fp32 and bf16 cases; device $device)"; note ""
  note "| family | result | seconds |"; note "|---|---|---|"
  for fam in "${ORACLES[@]}"; do
    say "oracle $fam (at most $oracle_budget s)"
    t0=$SECONDS
    flog="$work/oracle_$fam.log"
    rm -rf "$work/tmp_$fam"; mkdir -p "$work/tmp_$fam"
    SPATIALID_ORACLE_DEVICE=$device SPATIALID_FORWARD_CLI_DIR="$build/bin" TEST_SRCDIR="$runfiles" \
      TEST_WORKSPACE=spatialid TEST_TMPDIR="$work/tmp_$fam" PYTHONPATH="$repo/tests/python:$repo:${PYTHONPATH:-}" \
      timeout "$oracle_budget" "$PYTHON" "tests/families/${fam}_oracle_test.py" > "$flog" 2>&1
    rc=$?
    res=$(grep -E "^(OK|FAILED)|^Ran [0-9]+ tests" "$flog" | tr '\n' ' ')
    [ $rc -eq 124 ] && res="timed out after $oracle_budget s; $res"
    [ -n "$res" ] || res="exit $rc"
    say "oracle $fam: $res ($((SECONDS - t0)) s)"
    note "| $fam | $res | $((SECONDS - t0)) |"
    grep -E "^(FAIL|ERROR):|worst|relative" "$flog" | head -40 >> "$logfile"
    echo "{\"oracle\": \"$fam\", \"rc\": $rc, \"result\": \"$res\", \"seconds\": $((SECONDS - t0))}" >> "$results_json"
  done
fi

# --- 4. side by side, model by model ------------------------------------------------------------
if [ $skip_sbs -eq 0 ]; then
  note ""; note "## Side by side ($( [ $tiny -eq 1 ] && echo "tiny test models" || echo "full-size random-weight models") on $device)"
  declare -A family_of=([llava-7b]=llava [qwen-7b]=qwen2_5_vl [internvl-8b]=internvl [gemma-12b]=gemma3 [llama-11b]=mllama)
  n=${#MODELS[@]}
  for i in "${!MODELS[@]}"; do
    alias=${MODELS[$i]}
    remaining=$(left)
    share=$((remaining / (n - i)))
    if [ $share -lt 180 ]; then
      say "side by side $alias: skipped, $remaining s left"
      note ""; note "### $alias: not run ($remaining s of the budget left)"
      continue
    fi
    say "side by side $alias (budget $share s)"
    if [ $tiny -eq 1 ]; then
      size_flags=(--size=test "--family=${family_of[$alias]}" --pairs=1)
    else
      size_flags=(--size=full "--alias=$alias")
    fi
    t0=$SECONDS
    "$PYTHON" benchmarks/side_by_side.py "${size_flags[@]}" "--device=$device" "--budget_s=$share" \
      --batch_extraction="$build/bin/batch_extraction" --grid_data="$build/bin/grid_data" \
      --objects_dir="$objects" --work_dir="$work/side_by_side" --summary_dir="$work/summaries" \
      >> "$work/sbs_$alias.log" 2>&1
    rc=$?
    tag=$(ls -t "$work/summaries"/side_by_side_*.md 2>/dev/null | head -1)
    note ""; note "### $alias (exit $rc, $((SECONDS - t0)) s)"; note ""
    if [ $rc -eq 0 ] && [ -n "$tag" ]; then
      cat "$tag" >> "$summary"
      cat "$tag" >&2
      echo "{\"side_by_side\": \"$alias\", \"rc\": 0, \"summary\": \"$(basename "${tag%.md}").json\"}" >> "$results_json"
    else
      note '```'; tail -25 "$work/sbs_$alias.log" >> "$summary"; note '```'
      tail -25 "$work/sbs_$alias.log" >&2
      echo "{\"side_by_side\": \"$alias\", \"rc\": $rc}" >> "$results_json"
    fi
    cat "$work/sbs_$alias.log" >> "$logfile"
    # Full-size checkpoints take 15 to 25 GB each: the disk holds one at a time.
    [ $tiny -eq 1 ] || rm -rf "$work/side_by_side/models/$alias"
  done
fi

note ""; note "Total: $((SECONDS - start)) s."
cp "$summary" "$out/gpu_check.md"
"$PYTHON" - "$results_json" "$work/summaries" "$out/gpu_check.json" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    path = os.path.join(sys.argv[2], r.get("summary", ""))
    if r.get("summary") and os.path.isfile(path):
        r["data"] = json.load(open(path))
json.dump(rows, open(sys.argv[3], "w"), indent=1, default=str)
EOF
# A lent machine returns files of at most 16 MiB.
tail -c 8000000 "$logfile" > "$logfile.tmp" && mv "$logfile.tmp" "$logfile"
say "done: $out/gpu_check.md"
