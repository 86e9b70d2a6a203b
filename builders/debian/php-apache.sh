#!/usr/bin/env bash
# The test app's image root filesystem: the box's Debian root filesystem plus Apache and
# mod_php from the mirror, a PHP page that names the serving pod, no kernel.
#   php-apache.sh --rootfs-tar FILE --mirror URL --suite S --work DIR --out-root DIR
set -euo pipefail
rootfs_tar="" mirror="" suite="" work="" out_root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rootfs-tar) rootfs_tar="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out-root) out_root="$2"; shift 2 ;;
    *) echo "php-apache.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
progress() { echo "klab-progress: $*"; }
root="$out_root"
cleanup() {
  for sub in proc dev; do mountpoint -q "$root/$sub" 2>/dev/null && umount -l "$root/$sub"; done
  return 0
}
trap cleanup EXIT
rm -rf "$root"
mkdir -p "$root" "$work"
progress "unpacking the box's root filesystem"
tar -C "$root" -xpf "$rootfs_tar"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
progress "installing apache2 and libapache2-mod-php"
chroot "$root" apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends apache2 libapache2-mod-php >/dev/null
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q 'linux-image-*' initramfs-tools openssh-server >/dev/null
chroot "$root" apt-get autoremove -y -q --purge >/dev/null
chroot "$root" apt-get clean
umount -l "$root/proc" "$root/dev"
rm -rf "${root:?}"/var/lib/apt/lists/* "${root:?}"/boot/* "${root:?}/var/www/html/index.html"
cat > "$root/var/www/html/index.php" <<'PHP'
<?php
// klab test app: which pod answered, and from where.
header('Content-Type: text/plain');
echo "klab test app\n";
echo "served by: " . gethostname() . "\n";
echo "php: " . PHP_VERSION . "\n";
PHP
: > "$root/etc/machine-id"
