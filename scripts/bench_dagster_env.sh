#!/usr/bin/env bash
# Creates .venv-dagster (a venv of its own, so Dagster's dependencies never touch Servo's) for the
# Dagster side of `make bench`. Idempotent: a venv already holding the pinned version is reused.
# Prints the venv's dagster executable on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
DAGSTER_VERSION=${DAGSTER_VERSION:-1.13.29}
VENV=.venv-dagster
STAMP="$VENV/.installed-dagster-$DAGSTER_VERSION"
PY=${PY:-python3}
if [ ! -f "$STAMP" ]; then
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "dagster==$DAGSTER_VERSION"
    touch "$STAMP"
fi
echo "$PWD/$VENV/bin/dagster"
