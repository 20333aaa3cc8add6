#!/usr/bin/env bash
# Creates .venv with every pinned dependency. Idempotent; run by `make` on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip==25.3"
# constraints.txt pins the whole transitive set so the next machine resolves the same versions.
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
# gcloud-tasks-emulator pins protobuf<5 and would downgrade every Google library; it runs fine
# with the current protobuf, so it is installed without its dependency metadata (local-stack.md).
.venv/bin/python -m pip install --quiet --no-deps "gcloud-tasks-emulator==0.6.2"
