#!/usr/bin/env bash
# Regenerates the committed map (results/map/{mid,low,unstable}/): three `redit compare` runs of configs/map.yaml.
# About 10-15 minutes per regime on 2 CPU cores; rerunning skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs}
redit compare configs/map.yaml --output-dir "$RUNS/map-mid"
redit compare configs/map.yaml --output-dir "$RUNS/map-low" \
  --set base.model.warm_start.steps=150 --set base.model.warm_start.learning_rate=0.003
redit compare configs/map.yaml --output-dir "$RUNS/map-unstable" --set base.training.learning_rate=1e-3
for regime in mid low unstable; do
  mkdir -p "results/map/$regime/plots"
  cp "$RUNS/map-$regime"/{summary.json,report.md} "results/map/$regime/"
  cp "$RUNS/map-$regime"/plots/*.png "results/map/$regime/plots/"
done
