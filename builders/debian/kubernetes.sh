#!/usr/bin/env bash
# Builds Kubernetes server and node binaries from Debian's own `kubernetes` source package
# with Debian's Go, the way debian/rules does it (GOPATH symlink, make WHAT=..., no cgo).
#   kubernetes.sh --mirror URL --suite bookworm --work DIR --out FILE.tar.gz
set -euo pipefail
mirror="" suite="" work="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mirror) mirror="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "kubernetes.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
progress() { echo "klab-progress: $*"; }

need=()
for pkg in golang-1.19-go dpkg-dev make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  progress "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

mkdir -p "$work/lists/partial"
echo "deb-src $mirror $suite main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
progress "downloading the kubernetes source package from $mirror"
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only kubernetes >/dev/null)
rm -rf "$work/src"
(cd "$work" && dpkg-source -x ./kubernetes_*.dsc src >/dev/null)

cd "$work/src"
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
go_env=(env GOPATH="$PWD/.go" PATH="/usr/lib/go-1.19/bin:$PATH" CGO_ENABLED=0 HOME="$work/home"
  GOFLAGS=-mod=vendor GOPROXY=off)
# `make WHAT=...` first runs every code generator over the whole tree (8-10 minutes on 2
# cores), yet the source tarball already carries their deepcopy, conversion, defaults and
# prerelease-lifecycle output. Only the OpenAPI definitions of kube-apiserver are missing:
# generate those (under a minute), then build the six commands.
progress "generating the OpenAPI definitions (about 1 minute)"
"${go_env[@]}" make gen_openapi
progress "compiling kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl (about 10 minutes on 2 cores, longer under load)"
"${go_env[@]}" hack/make-rules/build.sh cmd/kube-apiserver cmd/kube-controller-manager \
  cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl

progress "packing $out"
stage="$work/stage/kubernetes/bin"
rm -rf "$work/stage"
mkdir -p "$stage"
for bin in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  cp "_output/bin/$bin" "$stage/"
done
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" kubernetes
mv "$out.partial" "$out"
