#!/usr/bin/env bash
# Replaces the lines between the markers `<!-- NAME:begin ...` and `<!-- NAME:end -->` of
# BENCHMARKS.md with the contents of FILE (with one blank line after the begin marker); the rest
# of the file is left as it is.
#
# Usage: tests/bench/section.sh NAME FILE
set -euo pipefail
name=$1 section=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
file=$root/BENCHMARKS.md
grep -q "^<!-- $name:begin" "$file" && grep -q "^<!-- $name:end" "$file" ||
  { echo "BENCHMARKS.md has no $name markers" >&2; exit 1; }
tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f "$tmp"' EXIT
awk -v section="$section" -v begin="^<!-- $name:begin" -v end="^<!-- $name:end" '
  $0 ~ begin { print; print ""; while ((getline line < section) > 0) print line; skip = 1; next }
  $0 ~ end { skip = 0 }
  !skip { print }' "$file" >"$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "BENCHMARKS.md: section $name rewritten" >&2
