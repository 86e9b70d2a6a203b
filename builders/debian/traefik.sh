#!/usr/bin/env bash
# Builds Traefik from its Go module through the Go module proxy (a static binary), from a
# copy of the module (its go.mod has replace directives, so `go install` refuses it).
# v2.11 is the newest line whose whole dependency set the Go proxy serves (v3 needs a
# nested module that is not published). The module carries no web dashboard assets; a
# lab's ingress does not need the dashboard.
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
# shellcheck source=/dev/null
. "$(dirname "$0")/go-module.sh"
echo "klab-progress: downloading the Traefik $version module"
copy_module github.com/traefik/traefik/v2 "$version"
# Without lego's DNS-01 providers: they pull in the cloud SDKs of some hundred DNS hosts
# (Azure, AWS, Aliyun, OCI...), most of the compile time and of the binary, for an ACME
# challenge a lab behind NAT never runs. Asking for one gives a clear error instead.
acme="$work/src/pkg/provider/acme/provider.go"
grep -q 'dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)' "$acme" || {
  echo "traefik.sh: $acme no longer looks as expected; cannot leave out the DNS-01 providers" >&2
  exit 65
}
sed -i -e '\#"github.com/go-acme/lego/v4/providers/dns"#d' \
  -e 's#dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)#nil, fmt.Errorf("this Traefik (built by klab) has no DNS-01 provider %q", p.DNSChallenge.Provider)#' \
  "$acme"
echo "klab-progress: compiling Traefik $version (a few minutes on 2 cores)"
mkdir -p "$work/stage/traefik"
(cd "$work/src" && go build -trimpath -o "$work/stage/traefik/traefik" \
  -ldflags "-s -w -X github.com/traefik/traefik/v2/pkg/version.Version=$version" ./cmd/traefik)
tar -C "$work/stage" --owner=0 --group=0 --mtime=@0 -czf "$out.partial" traefik
mv "$out.partial" "$out"
