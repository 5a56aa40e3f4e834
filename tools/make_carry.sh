#!/usr/bin/env bash
# Re-creates third_party/carry/ from the `carry` pins of third_party/PINS:
# the headers, static libraries (and libonig's shared library, which Debian
# ships without a static one) and copyright files that
# tools/build_without_bazel.sh needs on a machine with only g++, CUDA and a
# Python with torch (no Bazel, no network, no Debian dev packages).
#
# The .debs are fetched with apt-get download (exact versions), checked
# against the sha256 sums in third_party/carry/MANIFEST when one exists
# (so a re-run reproduces the committed folder, or says what changed), and
# unpacked with dpkg-deb. Only the files the build uses are kept.
#
# Usage: tools/make_carry.sh [--update]   (--update: accept new sha256 sums)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$repo/third_party/carry"
update=0
[ "${1:-}" = "--update" ] && update=1

mapfile -t pins < <(awk '$1 == "carry" { print $2 }' "$repo/third_party/PINS")
[ ${#pins[@]} -gt 0 ] || { echo "make_carry: no carry pins in third_party/PINS" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root" "$work/new/include" "$work/new/lib" "$work/new/copyright"
# apt drops privileges to _apt, which cannot write a root-owned mktemp folder.
chmod 755 "$work" "$work/debs"
# (apt warns that it downloads unsandboxed as root: expected here, not a problem.)
(cd "$work/debs" && apt-get download -q "${pins[@]}" 2>&1 >/dev/null | grep -v "unsandboxed" >&2 || true)

manifest="$work/new/MANIFEST"
echo "# package=version sha256-of-.deb (written by tools/make_carry.sh)" > "$manifest"
for pin in "${pins[@]}"; do
  pkg=${pin%%=*}
  deb=$(ls "$work/debs/${pkg}_"*.deb)
  sum=$(sha256sum "$deb" | cut -d' ' -f1)
  echo "$pin $sum" >> "$manifest"
  if [ -f "$out/MANIFEST" ] && [ $update -eq 0 ]; then
    want=$(awk -v p="$pin" '$1 == p { print $2 }' "$out/MANIFEST")
    if [ -n "$want" ] && [ "$want" != "$sum" ]; then
      echo "make_carry: $pin: sha256 $sum differs from MANIFEST's $want (rerun with --update to accept)" >&2
      exit 1
    fi
  fi
  dpkg-deb -x "$deb" "$work/root"
  cp "$work/root/usr/share/doc/$pkg/copyright" "$work/new/copyright/$pkg.copyright"
done

r="$work/root/usr"
inc="$work/new/include"
cp -r "$r/include/absl" "$r/include/nlohmann" "$inc/"
mkdir -p "$inc/stb"
cp "$r/include/stb/stb_image.h" "$r/include/stb/stb_image_write.h" "$inc/stb/"
cp "$r/include/jpeglib.h" "$r/include/jerror.h" "$r/include/jmorecfg.h" \
   "$r/include/x86_64-linux-gnu/jconfig.h" "$r/include/zlib.h" "$r/include/zconf.h" \
   "$r/include/oniguruma.h" "$r/include/utf8proc.h" "$inc/"
# absl's CMake files and pkg-config files are not needed.
lib="$r/lib/x86_64-linux-gnu"
cp "$lib"/libabsl_*.a "$lib/libjpeg.a" "$lib/libz.a" "$lib/libutf8proc.a" "$work/new/lib/"
# Debian has no static oniguruma: carry the shared library under its soname.
cp "$lib/$(readlink "$lib/libonig.so.5")" "$work/new/lib/libonig.so.5"
find "$work/new" -type f -exec chmod 644 {} +

rm -rf "$out/include" "$out/lib" "$out/copyright" "$out/MANIFEST"
mkdir -p "$out"
mv "$work/new/include" "$work/new/lib" "$work/new/copyright" "$work/new/MANIFEST" "$out/"
echo "make_carry: $(du -sh "$out" | cut -f1) in $out" >&2
