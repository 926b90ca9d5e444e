#!/usr/bin/env bash
# A MongoDB-protocol server on 127.0.0.1 for the tests that record runs in MongoDB and show them
# in Omniboard. No MongoDB server is packaged in the registries these machines reach; SecantusDB
# (PyPI, pinned below) is a MongoDB-compatible server on WiredTiger that speaks the wire protocol.
# It goes into its own virtual environment under the services folder, listens on a free port,
# and its URL is written to $services/mongodb.url (the tests read it, or INCASEM_TEST_MONGODB).
# Idempotent: a server that still answers is kept.
set -euo pipefail
version=0.7.0b3
services="${INCASEM_SERVICES_DIR:-$HOME/.cache/incasem-services}"
home="$services/mongodb"
venv="$home/venv-$version"
python="${PYTHON:-python3.11}"
mkdir -p "$home"

# The server answers when its process lives and its port accepts connections.
ping() {
    [ -f "$services/mongodb.url" ] && [ -f "$home/server.pid" ] || return 1
    kill -0 "$(cat "$home/server.pid")" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$(sed 's/.*://' "$services/mongodb.url")") 2>/dev/null
}

if [ ! -x "$venv/bin/secantusd-py" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "secantusdb==$version"
fi
if ping 2>/dev/null; then
    echo "mongodb: already running at $(cat "$services/mongodb.url")"
    exit 0
fi
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -rf "$home/data"
nohup "$venv/bin/python" -m secantus --host 127.0.0.1 --port "$port" --standalone \
    --storage-path "$home/data" --log-level WARNING >"$home/server.log" 2>&1 &
echo $! >"$home/server.pid"
echo "mongodb://127.0.0.1:$port" >"$services/mongodb.url"
for _ in $(seq 60); do
    if ping 2>/dev/null; then
        echo "mongodb: started at $(cat "$services/mongodb.url") (SecantusDB $version)"
        exit 0
    fi
    sleep 0.5
done
echo "mongodb: the server did not answer; see $home/server.log" >&2
exit 1
