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
# shellcheck source=/dev/null
. "$(dirname "$0")/go-module.sh"
echo "klab-progress: building flannel $version from its Go module"
copy_module github.com/flannel-io/flannel "$version"
# A lab needs only the vxlan backend. Two others stay out of the build: Tencent Cloud's
# (its SDK is not served by the Go module proxy) and the legacy udp one (it needs cgo,
# and klab wants a static binary).
sed -i -e '/pkg\/backend\/tencentvpc"/d' -e '/pkg\/backend\/udp"/d' "$work/src/main.go"
mkdir -p "$work/stage/flannel"
(cd "$work/src" && go build -trimpath -o "$work/stage/flannel/flanneld" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version" .)
install -m 0755 "$work/src/dist/mk-docker-opts.sh" "$work/stage/flannel/mk-docker-opts.sh"
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" flannel
mv "$out.partial" "$out"
