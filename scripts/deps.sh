#!/bin/sh
# Install the Debian packages Blobstore needs to build, test and benchmark.
# Idempotent: asks dpkg first and only calls apt-get for what is missing.
set -eu

# libclang-rt-14-dev: the ASan/UBSan runtimes and libFuzzer (only a
# Recommends of clang, so it is named here for --no-install-recommends).
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev liburing-dev libisal-dev \
libcmocka-dev libedit-dev fio util-linux python3"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
