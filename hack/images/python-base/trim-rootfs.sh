#!/usr/bin/env bash
# Trim a freshly debootstrapped root filesystem into an image root: drop what only a
# booted or apt-managed system needs and what the container runtime provides itself.
# Part of the python-base cache key: editing this file rebuilds the image.
# Usage: trim-rootfs.sh ROOTFS
set -euo pipefail
root=${1:?usage: trim-rootfs.sh ROOTFS}
[[ -x "$root/usr/bin/python3" ]] || { echo "trim-rootfs: $root has no python3" >&2; exit 1; }

# apt's package lists and downloaded .debs: the image never runs apt against a network.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# debootstrap's own leftovers and logs (logs carry timestamps of this build).
rm -rf "$root"/debootstrap "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old
# The runtime mounts /dev, /proc, /sys and bind-mounts resolv.conf, hosts, hostname;
# debootstrap copied the build host's resolv.conf, which must not leak into the image.
rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/* "$root"/var/tmp/*
rm -f "$root"/etc/resolv.conf "$root"/etc/hostname
: > "$root/etc/machine-id"
# Documentation, man pages and translations; licences (copyright files) stay.
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/usr/share/lintian "$root"/usr/share/linda
