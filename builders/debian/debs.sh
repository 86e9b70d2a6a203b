#!/usr/bin/env bash
# Downloads Debian packages together with every dependency the lab's box lacks: resolved
# inside a chroot of the box's own root filesystem, so `dpkg -i *.deb` works on the VMs
# without network.   debs.sh --rootfs-tar FILE --mirror URL --suite S --work DIR --out FILE.tar PKG...
set -euo pipefail
rootfs_tar="" mirror="" suite="" work="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rootfs-tar) rootfs_tar="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "debs.sh: unknown argument $1" >&2; exit 64 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "debs.sh: name at least one package" >&2; exit 64; }
progress() { echo "klab-progress: $*"; }

root="$work/root"
cleanup() {
  for sub in proc dev; do mountpoint -q "$root/$sub" 2>/dev/null && umount -l "$root/$sub"; done
  rm -rf "$root"
}
trap cleanup EXIT
rm -rf "$root"
mkdir -p "$root"
progress "unpacking the box's root filesystem"
tar -C "$root" -xpf "$rootfs_tar"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
progress "resolving $* against the box"
chroot "$root" apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --no-install-recommends "$@" >/dev/null
stage="$work/debs"
rm -rf "$stage"
mkdir -p "$stage"
cp "$root"/var/cache/apt/archives/*.deb "$stage/"
# dpkg on a VM under software emulation spends most of an install undoing xz (a fifth of
# Docker's binaries step). Debian 12's dpkg also reads zstd, which unpacks about 4x faster:
# each package's data.tar is recompressed as it is (the same tar, the same files; the
# control part untouched), in the member order dpkg requires.
if command -v zstd >/dev/null; then
  progress "recompressing the packages' data from xz to zstd (faster to unpack on the VMs)"
  for deb in "$stage"/*.deb; do
    members=$(ar t "$deb" | tr '\n' ' ')
    case "$members" in
      "debian-binary control.tar."*" data.tar.xz ") ;;
      *) continue ;;
    esac
    parts="$work/deb-parts"
    rm -rf "$parts"
    mkdir -p "$parts"
    (cd "$parts" && ar x "$deb")
    control=$(cd "$parts" && echo control.tar.*)
    xz -dc "$parts/data.tar.xz" | zstd -q -9 -T0 -o "$parts/data.tar.zst"
    rm "$parts/data.tar.xz"
    (cd "$parts" && ar rcD "$deb.zst" debian-binary "$control" data.tar.zst)
    mv "$deb.zst" "$deb"
  done
  rm -rf "$work/deb-parts"
else
  progress "zstd is not installed on this host: the packages keep xz (slower to unpack on the VMs)"
fi
progress "packing $(find "$stage" -name '*.deb' | wc -l) packages into $out"
tar -C "$stage" --owner=0 --group=0 -cf "$out.partial" .
mv "$out.partial" "$out"
