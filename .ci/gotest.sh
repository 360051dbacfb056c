#!/usr/bin/env bash
# Runs the whole Go test suite with the race detector, then mochi-mqtt's own
# tests on our patched copy (third_party/mochi). The full -v log goes to
# bin/test.log; the terminal gets one line per package as it finishes, the
# failing tests' output, and a closing count.
#
# The count is read from the log: every "--- PASS/FAIL/SKIP" line, plus one
# failure for each package that failed without naming a failed test (a panic
# outside a test, go test's -timeout, a build or setup failure), so a package
# that never finished can never close with "0 failed".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/test.log
# The patched mochi-mqtt copy is its own module, which ./... does not enter:
# its upstream tests run after ours, in the same log. Skipped there:
# TestEstablishConnectionInheritExistingTrueTakeover, which times its steps
# with 50 ms sleeps and hangs for 30 s on a loaded machine, unpatched
# upstream too (third_party/mochi/PATCHES.md).
mochiSkip='^TestEstablishConnectionInheritExistingTrueTakeover$'
suite() {
	local r=0
	go test -race -count=1 -timeout 20m -v "$@" ./... || r=1
	(cd third_party/mochi && go test -race -count=1 -timeout 10m -v -skip "$mochiSkip" "$@" ./...) || r=1
	return "$r"
}
suite "$@" 2>&1 | tee "$log" | grep --line-buffered -E '^(ok  |FAIL|panic:)'
rc=${PIPESTATUS[0]}
# go test prints each package's output as one block that ends with its
# "ok  <pkg>" or "FAIL <pkg>" line; count the blocks that failed silently.
read -r passed failed skipped silent < <(awk '
	/^[ \t]*--- PASS/ { pass++ }
	/^[ \t]*--- SKIP/ { skip++ }
	/^[ \t]*--- FAIL/ { fail++; blockfail++ }
	/^FAIL[ \t]+[^ \t]/ { if (blockfail == 0) silent++; blockfail = 0 }
	/^ok[ \t]+[^ \t]/ { blockfail = 0 }
	END { printf "%d %d %d %d\n", pass, fail + silent, skip, silent }
' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# go test failed and the log says nothing of it (killed, or no output).
	failed=1
fi
if [ "$rc" -ne 0 ]; then
	echo
	echo "== failures (full log: $log)"
	grep -E -B2 -A25 '^\s*--- FAIL|^panic:|build failed|\[setup failed\]' "$log" | head -300
	[ "$silent" -gt 0 ] && echo "($silent package(s) failed without a failed test: a panic, a timeout or a build failure; counted as failed)"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
