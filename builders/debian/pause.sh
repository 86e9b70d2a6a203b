#!/usr/bin/env bash
# Compiles klab's static pause program into a root filesystem tree for the image.
#   pause.sh --work DIR --out-root DIR
set -euo pipefail
work="" out_root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work="$2"; shift 2 ;;
    --out-root) out_root="$2"; shift 2 ;;
    *) echo "pause.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
echo "klab-progress: compiling the pause program (static)"
mkdir -p "$work" "$out_root"
gcc -Os -static -s -o "$out_root/pause" "$(dirname "$0")/pause.c"
chmod 0755 "$out_root/pause"
