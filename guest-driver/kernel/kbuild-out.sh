#!/bin/sh
# Build memcoop.ko out of the source tree: link the module's sources into
# OUT (the meson build directory), then run the make command given, which
# builds there with M=OUT.  Kbuild before 6.13 has no separate output
# directory for external modules (MO=), and since 6.12 an M= directory
# must hold the sources itself (src= no longer points elsewhere).
# usage: kbuild-out.sh SRC OUT -- COMMAND...
set -eu
src=$1
out=$2
shift 3
mkdir -p "$out"
for f in "$src"/Kbuild "$src"/*.c "$src"/*.h; do
	ln -sfn "$f" "$out/$(basename "$f")"
done
exec "$@"
