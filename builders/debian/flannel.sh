#!/usr/bin/env bash
# Builds flanneld from its Go module through the Go module proxy (a static binary), and
# packs it with mk-docker-opts.sh.   flannel.sh --version vX.Y.Z --work DIR --out FILE.tar.gz
set -euo pipefail
version="" work="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "flannel.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
progress() { echo "klab-progress: $*"; }
command -v go >/dev/null || export PATH="/usr/local/go/bin:/usr/lib/go/bin:$PATH"
command -v go >/dev/null || { echo "flannel.sh: no Go toolchain (apt-get install golang)" >&2; exit 69; }
# GOTOOLCHAIN=auto lets Go >= 1.21 fetch the toolchain flannel asks for from the module
# proxy; Debian 12's own Go 1.19 cannot.
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 21 ]; then
  echo "flannel.sh: $(go env GOVERSION) is too old; install Go >= 1.21 (bookworm-backports golang, or go.dev)" >&2
  exit 69
fi
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod
progress "building flannel $version from its Go module"
go mod download -json "github.com/flannel-io/flannel@$version" >/dev/null
src=$(go env GOMODCACHE)/github.com/flannel-io/flannel@$version
rm -rf "$work/src"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
# A lab needs only the vxlan backend. Two others stay out of the build: Tencent Cloud's
# (its SDK is not served by the Go module proxy) and the legacy udp one (it needs cgo,
# and klab wants a static binary).
sed -i -e '/pkg\/backend\/tencentvpc"/d' -e '/pkg\/backend\/udp"/d' "$work/src/main.go"
mkdir -p "$work/stage/flannel"
(cd "$work/src" && go build -trimpath -o "$work/stage/flannel/flanneld" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version" .)
install -m 0755 "$src/dist/mk-docker-opts.sh" "$work/stage/flannel/mk-docker-opts.sh"
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" flannel
mv "$out.partial" "$out"
