#!/usr/bin/env bash
# Runs the whole Go test suite with the race detector. The full -v log goes to
# bin/test.log; the terminal gets one line per package as it finishes, the
# failing tests' output, and a closing count.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/test.log
go test -race -count=1 -timeout 20m -v "$@" ./... 2>&1 | tee "$log" | grep --line-buffered -E '^(ok  |FAIL|panic:)'
rc=${PIPESTATUS[0]}
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [ "$rc" -ne 0 ]; then
	echo
	echo "== failures (full log: $log)"
	grep -E -B2 -A25 '^\s*--- FAIL|^panic:|build failed|\[setup failed\]' "$log" | head -300
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
