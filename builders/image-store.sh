#!/usr/bin/env bash
# A Docker image store with the lab's images in it, made on the host, for the VMs to
# unpack instead of loading each image themselves. Inside a software-emulated VM,
# `docker load` spends most of its time hashing and unpacking layers (5 s per compressed
# MB); unpacking a store that a native Docker already made is several times quicker
# (minikube ships its "preload" the same way).
#
# A private dockerd of the host's Docker does the loading: its own data, exec root, socket
# and an empty config, no bridge and no iptables rules, so it touches nothing of a Docker
# the host may already run. What it leaves in image/overlay2 and overlay2 is packed.
#   image-store.sh --work DIR --out FILE.tar.zst|FILE.tar.gz [--load ARCHIVE]... [--import ARCHIVE NAME ENTRYPOINT]...
# The name of --out says how the store is compressed: zstd for .tar.zst (several times
# faster to unpack on an emulated VM), gzip otherwise. --load takes a docker-archive; --import a tar of a static program, as the VMs'
# `docker import` would take it.
# Prints "klab-image-store: VERSION DRIVER" (the private dockerd's) when done.
set -euo pipefail
work="" out=""
loads=() imports=()
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --load) loads+=("$2"); shift 2 ;;
    --import) imports+=("$2" "$3" "$4"); shift 4 ;;
    *) echo "image-store.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
if [ -z "$work" ] || [ -z "$out" ] || [ $((${#loads[@]} + ${#imports[@]})) -eq 0 ]; then
  echo "usage: image-store.sh --work DIR --out FILE.tar.zst|FILE.tar.gz [--load ARCHIVE]... [--import ARCHIVE NAME ENTRYPOINT]..." >&2
  exit 64
fi
compress=(-z)
case "$out" in
  *.tar.zst) compress=(-I 'zstd -12 -T0') ;;
esac
for program in dockerd docker tar unshare; do
  command -v "$program" >/dev/null || { echo "image-store.sh: no $program on this host" >&2; exit 69; }
done

rm -rf "$work/data"
mkdir -p "$work/data"
echo '{}' >"$work/daemon.json"
# Sockets (dockerd's, and a containerd's it may start under its exec root) have a path
# limit of 107 bytes: they go to a short directory of their own, not under $work.
run=$(mktemp -d /tmp/klab-dockerd.XXXXXX)
sock="$run/docker.sock"
# In a network namespace of its own: a dockerd started with --bridge none deletes the
# host's docker0 (the bridge of the host's own Docker and its containers) as it starts.
# It needs no network to load images; its socket is a file, reachable from here.
unshare --net -- dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$run/exec" \
  --pidfile "$run/dockerd.pid" --host "unix://$sock" --storage-driver overlay2 \
  --bridge none --iptables=false --ip-masq=false \
  --containerd-namespace klab-image-store --containerd-plugins-namespace klab-image-store-plugins \
  >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
# dockerd bind-mounts its data root onto itself (private propagation) and does not
# always take that mount away when it stops: it goes here, or the data could not be removed.
stop_dockerd() {
  if kill -TERM "$dockerd_pid" 2>/dev/null; then
    for _ in $(seq 1 60); do
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  while mountpoint -q "$work/data"; do umount "$work/data" || umount -l "$work/data" || break; done
  rm -rf "$run"
}
trap stop_dockerd EXIT
docker_() { docker --host "unix://$sock" "$@"; }

echo "klab-progress: starting a private dockerd"
for _ in $(seq 1 120); do
  docker_ version >/dev/null 2>&1 && break
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "image-store.sh: the private dockerd exited; its log:" >&2
    grep -E 'level=(error|fatal)|failed' "$work/dockerd.log" | tail -5 >&2
    exit 70
  fi
  sleep 0.5
done
docker_ version >/dev/null

for archive in ${loads[@]+"${loads[@]}"}; do
  echo "klab-progress: docker load < $(basename "$archive")"
  docker_ load --quiet --input "$archive" >/dev/null
done
set -- ${imports[@]+"${imports[@]}"}
while [ $# -ge 3 ]; do
  echo "klab-progress: docker import $(basename "$1") as $2"
  docker_ import --change "ENTRYPOINT [\"$3\"]" "$1" "$2" >/dev/null
  shift 3
done
version=$(docker_ version --format '{{.Server.Version}}')
driver=$(docker_ info --format '{{.Driver}}')
stop_dockerd
trap - EXIT

echo "klab-progress: packing the store"
# Numeric owners and the overlay xattrs (opaque directories) as Docker wrote them.
tar -C "$work/data" --numeric-owner --xattrs --xattrs-include='trusted.*' \
  "${compress[@]}" -cf "$out.partial" image/overlay2 overlay2
mv "$out.partial" "$out"
rm -rf "$work/data"
echo "klab-image-store: $version $driver"
