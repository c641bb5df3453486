#!/bin/sh
# Install every Debian package memcoop needs to build, test and run its lab.
# Idempotent: safe to run twice; only installs what is missing.
# The other guest kernels (6.12, the newest trixie-backports one), their
# headers, the Debian 13 chroot that builds for trixie kernels and QEMU 10
# are not installed: the lab fetches them into ~/.cache/memcoop when a test
# first needs them (tests/lab/mclab kernel-tree, mclab run --kernel/--qemu).
# pahole: 6.12+ headers ship vmlinux, so Kbuild makes BTF for the module.
# bc bison flex libelf-dev libssl-dev: the lab's debug kernel
# (tests/lab/debugkernel.py), built from linux-source-6.12 when first used.
# debhelper dh-dkms lintian: the Debian packages (debian/, suite deb);
# e2fsprogs zstd: the Debian guest images of tests/image/ (mmdebstrap).
# systemd-container: systemd-nspawn boots the Debian 12 host image with
# memcoopd under systemd (deb-image-debian12: restart on upgrade).
# redis-server redis-tools memcached openjdk-17-jre-headless: run in lab guests
# from the host's /usr (mclab run --host-usr); python3-matplotlib: the demo's plot.
set -eu

PKGS="build-essential pkg-config meson ninja-build sparse pahole
linux-headers-amd64 linux-libc-dev kmod dkms cpio gzip xz-utils busybox-static
mmdebstrap util-linux
bc bison flex libelf-dev libssl-dev
redis-server redis-tools memcached openjdk-17-jre-headless python3-matplotlib
qemu-system-x86 qemu-utils socat
libvirt-dev libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
libevent-dev libcunit1-dev libjansson-dev
jq procps python3
prometheus afl++ groff-base man-db
debhelper dh-dkms lintian e2fsprogs zstd systemd-container"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
