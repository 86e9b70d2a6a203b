#!/usr/bin/env bash
# The test app's image root filesystem, small: Apache and mod_php are installed from the
# mirror into a scratch copy of the box's Debian root filesystem, then only the files
# Apache + PHP need are copied out (the programs, their modules and configuration, and
# the shared libraries ldd names for them), plus a PHP page that names the serving pod.
# No shell, no package manager, no PHP extensions: about 50 MB instead of 350.
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
root="$work/full"
cleanup() {
  for sub in proc dev; do mountpoint -q "$root/$sub" 2>/dev/null && umount -l "$root/$sub"; done
  return 0
}
trap cleanup EXIT
rm -rf "$root" "$out_root"
mkdir -p "$root" "$work" "$out_root"
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
slim="$out_root"
progress "copying what Apache and PHP need into the image"
# Debian 12 merges /usr: /lib, /lib64, /bin and /sbin are links into /usr.
mkdir -p "$slim/usr/lib64" "$slim/usr/lib" "$slim/usr/bin" "$slim/usr/sbin" "$slim/etc"
for link in lib lib64 bin sbin; do
  if [ -L "$root/$link" ]; then cp -a "$root/$link" "$slim/$link"; fi
done
copy() { # copy paths of the full root (symlinks kept) into the slim root
  for rel in "$@"; do
    mkdir -p "$slim/$(dirname "$rel")"
    cp -a "$root/$rel" "$slim/$rel"
  done
}
# Only the modules Debian's configuration loads (mod_php among them), not all of them.
modules=$(cat "$root"/etc/apache2/mods-enabled/*.load | awk '/^LoadModule/ {print substr($3, 2)}' | sort -u)
# shellcheck disable=SC2086 # one path per word
copy usr/sbin/apache2 etc/apache2 etc/php etc/mime.types $modules
# No PHP extensions: the page needs only the core, and each extension pulls libraries in.
find "$slim/etc/php" -path '*/conf.d/*' -delete
# Every shared library they load (the dynamic loader too), by the path the loader asks for.
for elf in usr/sbin/apache2 $modules; do
  chroot "$root" ldd "/$elf" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
  mkdir -p "$slim$(dirname "$lib")"
  cp -L "$root$lib" "$slim$lib"
done
# PHP (Debian builds it to read the system time zones) and Apache want these two words.
mkdir -p "$slim/usr/share/zoneinfo"
cp -L "$root/usr/share/zoneinfo/UTC" "$slim/usr/share/zoneinfo/UTC"
echo 'ServerName localhost' > "$slim/etc/apache2/conf-enabled/klab-servername.conf"
mkdir -p "$slim/tmp" "$slim/var/run/apache2" "$slim/var/lock/apache2" "$slim/var/log/apache2" \
  "$slim/var/www/html"
chmod 1777 "$slim/tmp"
grep -E '^(root|www-data):' "$root/etc/passwd" > "$slim/etc/passwd"
grep -E '^(root|www-data):' "$root/etc/group" > "$slim/etc/group"
# Logs to the container's output, like the official php:apache image.
ln -sf /dev/stderr "$slim/var/log/apache2/error.log"
ln -sf /dev/stdout "$slim/var/log/apache2/access.log"
ln -sf /dev/stdout "$slim/var/log/apache2/other_vhosts_access.log"
chown -R 33:33 "$slim/var/run/apache2" "$slim/var/lock/apache2"
progress "image root: $(du -sm "$slim" | cut -f1) MB"
if mountpoint -q "$root/proc" || mountpoint -q "$root/dev"; then
  echo "php-apache.sh: $root still has mounts; not removing it" >&2
  exit 1
fi
rm -rf "$root"
root="$slim"
cat > "$root/var/www/html/index.php" <<'PHP'
<?php
// klab test app: which pod answered, and from where.
header('Content-Type: text/plain');
echo "klab test app\n";
echo "served by: " . gethostname() . "\n";
echo "php: " . PHP_VERSION . "\n";
PHP
: > "$root/etc/machine-id"
