#!/usr/bin/env bash
# Builds CoreDNS, the lab's cluster DNS, from its Go module through the Go module proxy (a
# static binary). Only the plugins the lab's Corefile uses are compiled in: CoreDNS picks
# its plugins at build time (core/plugin/zplugin.go, generated from plugin.cfg upstream),
# and the full set pulls in every cloud provider's SDK. v1.10.1 is the last CoreDNS that
# still reads Endpoints through discovery.k8s.io/v1beta1, which Kubernetes 1.20 serves.
#   coredns.sh --version vX.Y.Z --work DIR --out FILE.tar.gz
set -euo pipefail
version="" work="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "coredns.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
# shellcheck source=/dev/null
. "$(dirname "$0")/go-module.sh"
echo "klab-progress: downloading the CoreDNS $version module"
copy_module github.com/coredns/coredns "$version"
plugins="errors log health ready kubernetes metrics forward cache loop reload loadbalance"
{
  echo "// Written by klab's coredns.sh: the plugins of the lab's Corefile only."
  echo
  echo "package plugin"
  echo
  echo "import ("
  for name in $plugins; do
    echo "	_ \"github.com/coredns/coredns/plugin/$name\""
  done
  echo ")"
} > "$work/src/core/plugin/zplugin.go"
echo "klab-progress: compiling CoreDNS $version (plugins: $plugins)"
mkdir -p "$work/stage/coredns"
(cd "$work/src" && go build -trimpath -o "$work/stage/coredns/coredns" -ldflags "-s -w" .)
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" coredns
mv "$out.partial" "$out"
