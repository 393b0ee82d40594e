#!/bin/bash
# A tour of Blobstore through blobcli, on a file-backed store under the build
# directory (`make demo`). Every step prints the command it runs.
#
#   init -> import a file -> snapshot -> clone -> write into the clone ->
#   export both -> compare -> check -> info
set -euo pipefail
BUILD=${1:-build}
CLI="$BUILD/bin/blobcli"
STORE="$BUILD/tour-store.img"
DIR="$BUILD/tour"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
id_of() { grep -oE 'blob 0x[0-9a-f]+' "$1" | head -1 | cut -d' ' -f2; }

rm -rf "$DIR"
mkdir -p "$DIR"
SRC="$DIR/original.bin"
cp "$CLI" "$SRC" # a real file of about a megabyte: the blobcli binary itself

step "Make a 256 MiB file-backed store"
show "$CLI" -f "$STORE" --create 256M init --force

step "Import a file into a new blob (its exact length is kept in blobcli.size)"
show "$CLI" -f "$STORE" import "$SRC" | tee "$DIR/import.txt"
ORIG=$(id_of "$DIR/import.txt")

step "Snapshot the blob (nothing is copied), then clone the snapshot"
show "$CLI" -f "$STORE" snapshot "$ORIG" --xattr purpose=tour | tee "$DIR/snap.txt"
SNAP=$(grep -oE 'snapshot blob 0x[0-9a-f]+' "$DIR/snap.txt" | cut -d' ' -f3)
show "$CLI" -f "$STORE" clone "$SNAP" | tee "$DIR/clone.txt"
CLONE=$(id_of "$DIR/clone.txt")

step "Write into the clone: 8 KiB of 0x5a at offset 64 KiB"
show "$CLI" -f "$STORE" fill "$CLONE" 0x5a --offset 64K --length 8K

step "Export the snapshot and the clone"
show "$CLI" -f "$STORE" export "$SNAP" "$DIR/snapshot.out"
show "$CLI" -f "$STORE" export "$CLONE" "$DIR/clone.out"

step "Compare: the snapshot comes back byte for byte; the clone differs where written"
show cmp "$SRC" "$DIR/snapshot.out" && echo "snapshot: identical to the imported file"
DIFF=$(cmp -l "$SRC" "$DIR/clone.out" | wc -l || true)
FIRST=$(cmp "$SRC" "$DIR/clone.out" | grep -oE 'byte [0-9]+' || true)
echo "clone: $DIFF bytes differ, the first at $FIRST (offset 65536 is byte 65537)"

step "A script does the same in one process: \$B1 is the first blob it creates"
cat >"$DIR/tour.script" <<EOF
# one command per line; \$Bn names blobs created by this script
import $SRC
xattr set \$B1 purpose "script demo"
xattr list \$B1
export \$B1 $DIR/script.out
EOF
show "$CLI" -f "$STORE" script "$DIR/tour.script"
show cmp "$SRC" "$DIR/script.out" && echo "script export: identical"

step "Check the store, then show what is in it"
show "$CLI" -f "$STORE" check
show "$CLI" -f "$STORE" list
show "$CLI" -f "$STORE" info
step "Give the clone its own clusters (inflate): it no longer needs the snapshot"
show "$CLI" -f "$STORE" inflate "$CLONE"
show "$CLI" -f "$STORE" list
echo
echo "tour done: try '$CLI -f $STORE shell' (tab completes, 'help' lists commands)"
