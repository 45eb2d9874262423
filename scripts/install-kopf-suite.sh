#!/usr/bin/env bash
# kopf's own end-to-end suite (tests/e2e in its source archive: every example operator
# run against a real cluster) is run unchanged against miniorch by tests/e2e. It needs
# kopf's test tooling (pytest 9, looptime, ...), which conflicts with ours, so it gets a
# venv of its own: $VENV/kopf-suite/{src,venv}. Idempotent; `make install` calls it.
set -euo pipefail
py=$1
venv=$2
version=$("$py" -c 'import importlib.metadata as m; print(m.version("kopf"))')
suite="$venv/kopf-suite"
[ -f "$suite/.installed-$version" ] && exit 0
rm -rf "$suite"
mkdir -p "$suite" "$venv/sdist"
archive="$venv/sdist/kopf-$version.tar.gz"
[ -f "$archive" ] || "$py" -m pip download -q --no-deps --no-binary :all: -d "$venv/sdist" \
  "kopf==$version"
tar xzf "$archive" -C "$suite"
mv "$suite/kopf-$version" "$suite/src"
"$py" -m venv "$suite/venv"
# The test tooling kopf's suite was last seen passing with (kopf's own dev extras).
"$suite/venv/bin/python" -m pip install -q "$suite/src" pytest==9.2.0 looptime==0.9 \
  freezegun==1.5.5 pytest-asyncio==1.5.0 pytest-aiohttp==1.1.1 pytest-mock==3.17.0 \
  pytest-timeout==2.4.0 kubernetes==37.0.2 pykube-ng==23.6.0
touch "$suite/.installed-$version"
