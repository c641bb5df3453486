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
# 7.x's Makefile switches sparse off when it cannot parse the headers
# (Debian's sparse 0.6.4 predates __typeof_unqual__): said, not hidden.
nosparse='C=2 specified, but sparse is not available or not up to date'
problems=$(grep -v -e 'Skipping BTF generation' -e "$nosparse" "$log")
if [ $rc -ne 0 ] || [ -n "$problems" ] || [ ! -f "$out/memcoop.ko" ]; then
	echo "memcoop.ko: W=1 / sparse build is not clean (make exit $rc):"
	cat "$log"
	exit 1
fi
ver=$(modinfo -F vermagic "$out/memcoop.ko" | cut -d' ' -f1)
if grep -q -e "$nosparse" "$log"; then
	echo "memcoop.ko builds clean with W=1 against $kdir ($ver);" \
		"sparse NOT run: $(sparse --version 2>/dev/null || echo sparse)" \
		"cannot parse this kernel's headers (the kernel's checker-valid.sh says so)"
	exit 0
fi
echo "memcoop.ko builds clean with W=1 and sparse against $kdir ($ver)"
