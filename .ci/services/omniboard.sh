#!/usr/bin/env bash
# Omniboard, the Sacred dashboard, from npm (version pinned below), installed under the services
# folder where `incasem board` finds it; node and npm come from Debian when missing. The tests
# start it with `incasem board --mongodb URL`. Idempotent: an installed version is kept.
set -euo pipefail
version=2.16.1
services="${INCASEM_SERVICES_DIR:-$HOME/.cache/incasem-services}"
home="$services/omniboard"
installed="$home/node_modules/omniboard/package.json"

if [ -f "$installed" ] && grep -q "\"version\": \"$version\"" "$installed"; then
    echo "omniboard: $version already installed in $home"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "omniboard: npm is missing and cannot be installed (needs root and apt-get)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm \
        >/dev/null
fi
mkdir -p "$home"
npm install --prefix "$home" --no-audit --no-fund --loglevel=error "omniboard@$version"
echo "omniboard: $version installed in $home"
