#!/usr/bin/env bash
# Shared by the recipes that build a program from its Go module (flannel.sh, traefik.sh).
# Source it after setting $work; it finds a Go >= 1.21 and isolates its caches in $work.
# shellcheck disable=SC2154 # $work is set by the sourcing recipe

command -v go >/dev/null || export PATH="/usr/local/go/bin:/usr/lib/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "$(basename "$0"): no Go toolchain (install Go >= 1.21)" >&2
  exit 69
fi
# GOTOOLCHAIN=auto lets Go >= 1.21 fetch the toolchain a module asks for from the module
# proxy; Debian 12's own Go 1.19 cannot.
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${go_minor:-0}" -lt 21 ]; then
  echo "$(basename "$0"): $(go env GOVERSION) is too old; install Go >= 1.21 (bookworm-backports golang, or go.dev)" >&2
  exit 69
fi
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod

# copy_module MODULE VERSION: a writable copy of the module's source in $work/src
# (builds from a copy work even when the module's go.mod has replace directives).
copy_module() {
  go mod download -json "$1@$2" >/dev/null
  module_dir=$(go env GOMODCACHE)/$1@$2
  rm -rf "$work/src"
  cp -r "$module_dir" "$work/src"
  chmod -R u+w "$work/src"
}
