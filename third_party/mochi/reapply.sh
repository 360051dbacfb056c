#!/usr/bin/env bash
# Re-create third_party/mochi from an upstream release of
# github.com/mochi-mqtt/server/v2 and apply our patches on top.
#
#   third_party/mochi/reapply.sh [VERSION]     (default: the version in UPSTREAM)
#
# The release is fetched into the Go module cache (go mod download) and
# copied without the parts the edge does not use (storage backends with
# their databases, config loader, examples, cmd), so the copy's go.mod stays
# small. Then every patches/*.patch is applied in name order; a patch that
# no longer applies stops the script with the file named, for a human to
# rebase (or drop, if upstream fixed it). Run `make test` afterwards: it
# runs mochi's own tests on the copy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=${1:-$(cat "$here/UPSTREAM")}
mod=github.com/mochi-mqtt/server/v2

src=$(cd "$here" && GOFLAGS=-mod=mod go mod download -json "$mod@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
	echo "reapply: cannot find $mod@$version in the module cache" >&2
	exit 1
fi

# Keep our own files (this script, patches, notes); replace everything else.
find "$here" -mindepth 1 -maxdepth 1 \
	! -name reapply.sh ! -name patches ! -name PATCHES.md ! -name UPSTREAM \
	-exec rm -rf {} +
(cd "$src" && tar cf - \
	--exclude=./cmd --exclude=./examples --exclude=./config \
	--exclude=./hooks/storage/badger --exclude=./hooks/storage/bolt \
	--exclude=./hooks/storage/pebble --exclude=./hooks/storage/redis \
	--exclude='./*.md' --exclude=./Dockerfile --exclude=./config.yaml \
	--exclude=./go.mod --exclude=./go.sum .) | (cd "$here" && tar xf -)
cp "$src/LICENSE.md" "$here/LICENSE.md"
chmod -R u+w "$here"
echo "$version" >"$here/UPSTREAM"

# Upstream's requirements, without the storage backends we leave out;
# tidy then drops whatever the kept packages do not import.
grep -v -e badger -e pebble -e miniredis -e go-redis -e bbolt "$src/go.mod" >"$here/go.mod"
(cd "$here" && GOFLAGS=-mod=mod go mod tidy)

for p in "$here"/patches/*.patch; do
	[ -e "$p" ] || continue
	echo "apply $(basename "$p")"
	if ! patch -d "$here" -p1 --forward --quiet --no-backup-if-mismatch <"$p"; then
		echo "reapply: $(basename "$p") does not apply to $version; rebase or drop it" >&2
		exit 1
	fi
done
(cd "$here" && GOFLAGS=-mod=mod go mod tidy && gofmt -l . && go vet ./...)
echo "third_party/mochi: $mod $version with $(ls "$here"/patches/*.patch 2>/dev/null | wc -l) patches"
