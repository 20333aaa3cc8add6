#!/usr/bin/env bash
# Upload the function zips built by scripts/package_functions.py to the sources bucket, under the
# content-addressed names Terraform deploys (<fn>-<sha256>.zip; servo-core local.source_objects).
# The one upload path, for a person (infra/README.md) and for CI (cloudbuild.yaml): Terraform never
# uploads them, so no plan can delete a live zip. --no-clobber: an unchanged function keeps its object.
# Usage: scripts/upload_functions.sh BUCKET [MANIFEST]   (MANIFEST: build/functions/manifest.json)
set -euo pipefail
bucket=${1:?usage: $0 BUCKET [MANIFEST]}
manifest=${2:-build/functions/manifest.json}
dir=$(dirname "$manifest")
python3 - "$manifest" <<'PY' | while read -r zip name; do gcloud storage cp --no-clobber "$dir/$zip" "gs://$bucket/$name"; done
import json, sys
for fn, a in sorted(json.load(open(sys.argv[1])).items()):
    print(a["zip"], f"{fn}-{a['sha256']}.zip")
PY
