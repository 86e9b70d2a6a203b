#!/usr/bin/env bash
# Builds a libvirt Vagrant box from a Debian or Ubuntu mirror with debootstrap.
#
# Called by `klab box build`, which decides the cache paths and whether a build is
# needed at all; this script only builds. It needs root (debootstrap, loop devices).
#
#   build-box.sh --suite bookworm --mirror http://deb.debian.org/debian \
#                --rootfs-tar /cache/rootfs.tar --box /cache/out.box \
#                --pubkey /path/vagrant.pub [--disk-gb 30] [--kernel-out FILE]
#
# The root filesystem is kept as a tarball (--rootfs-tar) so the container test tier
# and later rebuilds reuse it; if that file already exists debootstrap is skipped.
# Progress lines start with "klab-progress:" so klab can show them as steps.
set -euo pipefail

suite="" mirror="" rootfs_tar="" box="" pubkey="" kernel_out="" disk_gb=30

while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --rootfs-tar) rootfs_tar="$2"; shift 2 ;;
    --box) box="$2"; shift 2 ;;
    --pubkey) pubkey="$2"; shift 2 ;;
    --disk-gb) disk_gb="$2"; shift 2 ;;
    --kernel-out) kernel_out="$2"; shift 2 ;;
    *) echo "build-box.sh: unknown argument: $1" >&2; exit 64 ;;
  esac
done

for required in suite mirror rootfs_tar box pubkey; do
  if [ -z "${!required}" ]; then
    echo "build-box.sh: --${required//_/-} is required" >&2
    exit 64
  fi
done

progress() { echo "klab-progress: $*"; }

case "$suite" in
  bionic|focal|jammy)
    kernel_pkg=linux-image-generic
    components=main,universe
    ;;
  *)
    kernel_pkg=linux-image-amd64
    components=main
    ;;
esac

# Packages every lab VM needs before any stack is installed: systemd as init, sshd with
# SFTP (klab copies files over SFTP), ifupdown + dhclient (what Vagrant's Debian guest
# capability configures), the networking tools the Kubernetes steps rely on, and QEMU's
# guest agent (klab sets guest clocks through it after a snapshot revert), zstd (the
# binaries step streams the programs zstd-compressed: several times faster to unpack than
# gzip under software emulation); and for the learner, who works on the VMs in the lessons:
# openssl to look at certificates, an editor.
packages=(
  systemd systemd-sysv udev dbus kmod procps
  openssh-server openssh-sftp-server sudo
  iproute2 ifupdown isc-dhcp-client netbase iputils-ping
  iptables conntrack socat ebtables ipset
  ca-certificates curl less openssl nano vim-tiny
  qemu-guest-agent zstd
  "$kernel_pkg" initramfs-tools
)

work=$(mktemp -d /var/tmp/klab-box.XXXXXX)
root="$work/root"
mnt="$work/mnt"
loopdev=""
cleanup() {
  set +e
  if mountpoint -q "$mnt" 2>/dev/null; then umount -R "$mnt"; fi
  for sub in dev/pts dev proc sys; do
    if mountpoint -q "$root/$sub" 2>/dev/null; then umount "$root/$sub"; fi
  done
  if [ -n "$loopdev" ]; then losetup -d "$loopdev"; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$root" "$mnt"

in_root() { chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive "$@"; }

if [ -s "$rootfs_tar" ]; then
  progress "reusing root filesystem $rootfs_tar"
  tar -C "$root" --xattrs --xattrs-include='*' -xpf "$rootfs_tar"
else
  progress "debootstrap $suite from $mirror (about 5 minutes)"
  include=$(IFS=,; echo "${packages[*]}")
  debootstrap --variant=minbase --components="$components" --include="$include" \
    "$suite" "$root" "$mirror"

  progress "configuring the guest"
  echo "klab" > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  echo "deb $mirror $suite ${components//,/ }" > "$root/etc/apt/sources.list"

  cat > "$root/etc/network/interfaces" <<'EOF'
# eth0 is the Vagrant management network (DHCP). Vagrant appends the private network.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF

  # The vagrant user with the well-known insecure key; vagrant-libvirt swaps it for a
  # per-VM key on first boot.
  in_root useradd --create-home --shell /bin/bash --groups sudo vagrant
  echo 'vagrant:vagrant' | in_root chpasswd
  install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
  install -m 0600 -o 1000 -g 1000 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
  echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "$root/etc/sudoers.d/vagrant"
  chmod 0440 "$root/etc/sudoers.d/vagrant"
  in_root passwd --lock root

  # Every VM must get its own SSH host keys and machine-id, so neither is baked in.
  rm -f "$root"/etc/ssh/ssh_host_*
  mkdir -p "$root/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    > "$root/etc/systemd/system/ssh.service.d/klab-host-keys.conf"
  printf 'UseDNS no\n' > "$root/etc/ssh/sshd_config.d/klab.conf"
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"

  in_root apt-get clean
  rm -rf "$root"/var/lib/apt/lists/*

  progress "saving root filesystem $rootfs_tar"
  mkdir -p "$(dirname "$rootfs_tar")"
  # --xattrs keeps file capabilities (ping needs cap_net_raw to run as a normal user).
  tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -cpf "$rootfs_tar.partial" .
  mv "$rootfs_tar.partial" "$rootfs_tar"
fi

progress "writing a ${disk_gb} GiB disk image"
raw="$work/disk.raw"
truncate -s "${disk_gb}G" "$raw"
echo 'start=2048, type=83, bootable' | sfdisk --quiet "$raw"
# Partition nodes do not appear for loop devices here, so attach the partition by offset.
part_bytes=$(( disk_gb * 1024 * 1024 * 1024 - 1048576 ))
loopdev=$(losetup --find --show --offset 1048576 --sizelimit "$part_bytes" "$raw")
mkfs.ext4 -q -L klab-root -O ^64bit,^metadata_csum "$loopdev"
uuid=$(blkid -s UUID -o value "$loopdev")
mount "$loopdev" "$mnt"
cp -a "$root"/. "$mnt"/

kernel=$(find "$mnt/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
initrd="initrd.img-${kernel#vmlinuz-}"
if [ ! -f "$mnt/boot/$initrd" ]; then
  echo "build-box.sh: no initrd for $kernel in the root filesystem" >&2
  exit 1
fi
if [ -n "$kernel_out" ]; then
  # klab boots this kernel under KVM for a few seconds to learn whether KVM works here.
  cp "$mnt/boot/$kernel" "$kernel_out"
fi
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" > "$mnt/etc/fstab"
mkdir -p "$mnt/boot/extlinux"
# cgroup v1: the Docker-era kubelets of the pinned stacks need it. init_on_free=1: the
# kernel zeroes every page it frees, so the free memory of a guest is zeros and costs
# nothing in a checkpoint's saved state (klab then only drops the page cache before one,
# instead of filling the free memory with zeros itself: minutes per checkpoint under TCG).
# tsc=reliable: under TCG the kernel's boot-time TSC sync check fails between vCPUs (QEMU
# gives every vCPU the same host-based, monotonic counter, but the check's timing is off
# under emulation), marks the TSC unstable and falls back to the HPET, an emulated device:
# every clock read (Go programs read the clock all the time) is then a system call plus
# device emulation, 5.5 us instead of 0.4 us measured in a TCG guest. Under KVM kvm-clock
# still ranks first, so this changes nothing there.
cat > "$mnt/boot/extlinux/extlinux.conf" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 1
LABEL linux
  LINUX /boot/$kernel
  INITRD /boot/$initrd
  APPEND root=UUID=$uuid ro net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200 systemd.unified_cgroup_hierarchy=0 init_on_free=1 tsc=reliable
EOF
extlinux --install "$mnt/boot/extlinux" >/dev/null
umount "$mnt"
losetup -d "$loopdev"
loopdev=""
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none

progress "converting to qcow2"
qemu-img convert -O qcow2 "$raw" "$work/box.img"
rm -f "$raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$disk_gb" > "$work/metadata.json"
cat > "$work/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF

progress "packing $box"
mkdir -p "$(dirname "$box")"
tar -C "$work" -cf "$box.partial" metadata.json Vagrantfile box.img
mv "$box.partial" "$box"
progress "done"
