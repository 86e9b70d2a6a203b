#!/usr/bin/env bash
# Builds Traefik from its Go module through the Go module proxy (a static binary).
# Its go.mod has replace directives, so `go install mod@version` refuses it: build from a
# copy of the module. v2.11 is the newest line whose whole dependency set the Go proxy
# serves (v3 needs a nested module that is not published). The module zip carries no web
# dashboard assets; a lab's ingress does not need the dashboard.
#   traefik.sh --version vX.Y.Z --work DIR --out FILE.tar.gz
set -euo pipefail
version="" work="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "traefik.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
progress() { echo "klab-progress: $*"; }
command -v go >/dev/null || export PATH="/usr/local/go/bin:/usr/lib/go/bin:$PATH"
command -v go >/dev/null || { echo "traefik.sh: no Go toolchain (apt-get install golang)" >&2; exit 69; }
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 21 ]; then
  echo "traefik.sh: $(go env GOVERSION) is too old; install Go >= 1.21" >&2
  exit 69
fi
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod
progress "downloading the Traefik $version module"
go mod download -json "github.com/traefik/traefik/v2@$version" >/dev/null
src=$(go env GOMODCACHE)/github.com/traefik/traefik/v2@$version
rm -rf "$work/src"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
progress "compiling Traefik $version (several minutes on 2 cores)"
mkdir -p "$work/stage/traefik"
(cd "$work/src" && go build -trimpath -o "$work/stage/traefik/traefik" \
  -ldflags "-s -w -X github.com/traefik/traefik/v2/pkg/version.Version=$version" ./cmd/traefik)
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" traefik
mv "$out.partial" "$out"
