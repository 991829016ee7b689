#!/usr/bin/env bash
# Regenerates the committed map (results/map/{mid,sparse,hard}/): three `redit compare configs/map.yaml` runs, in
# regimes where vanilla GRPO learns. About 25 minutes per regime on 2 CPU cores; rerunning skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs}
redit compare configs/map.yaml --output-dir "$RUNS/map-mid"
redit compare configs/map.yaml --output-dir "$RUNS/map-sparse" --set base.model.warm_start.steps=175
redit compare configs/map.yaml --output-dir "$RUNS/map-hard" --set base.data.params.digits=3 \
  --set base.data.limit=50000 --set base.model.warm_start.steps=600 --set base.model.warm_start.limit=50000
rm -rf results/map/{mid,low,unstable,sparse,hard}
for regime in mid sparse hard; do
  mkdir -p "results/map/$regime/plots"
  cp "$RUNS/map-$regime"/{summary.json,report.md} "results/map/$regime/"
  cp "$RUNS/map-$regime"/plots/*.png "results/map/$regime/plots/"
done
