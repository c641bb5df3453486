#!/bin/sh
# memcoop.ko must build with W=1 and sparse (C=2) without a single warning.
# usage: kbuild_clean.sh KERNEL_DIR MODULE_SOURCE_DIR [PREFIX...]
# PREFIX: the command make runs under (the chroot of trixie kernels).
set -u
kdir=$1
src=$2
shift 2
out=$(mktemp -d "${TMPDIR:-/tmp}/memcoop-test-kbuild.XXXXXX") || exit 1
log=$out.log
# sh runs the EXIT trap on a signal only if the signal is trapped too
trap 'rm -rf "$out" "$log"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
MCLAB_CHROOT_BIND=$out sh "$src/kbuild-out.sh" "$src" "$out" -- "$@" \
	make -s -C "$kdir" M="$out" MEMCOOP_PROTO="$src/../../proto" W=1 C=2 modules \
	>"$log" 2>&1
rc=$?
# BTF is skipped for every out-of-tree module of a headers-only tree: not ours.
problems=$(grep -v -e 'Skipping BTF generation' "$log")
if [ $rc -ne 0 ] || [ -n "$problems" ] || [ ! -f "$out/memcoop.ko" ]; then
	echo "memcoop.ko: W=1 / sparse build is not clean (make exit $rc):"
	cat "$log"
	exit 1
fi
echo "memcoop.ko builds clean with W=1 and sparse against $kdir" \
	"($(modinfo -F vermagic "$out/memcoop.ko" | cut -d' ' -f1))"
