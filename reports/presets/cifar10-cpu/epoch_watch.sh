#!/bin/bash
# Log when each training's tmp output appears and its per-epoch loss file grows: epoch wall times of the CIFAR-10 run.
cd "${1:?the run clone}/models/grid/train"
declare -A seen start
while true; do
  for d in .*.tmp; do
    [ -d "$d" ] || continue
    [ -z "${start[$d]:-}" ] && start[$d]=1 && echo "$(date +%s.%N) tmpdir $d"
    f=$d/live/plots/metrics/train_loss.tsv
    [ -f "$f" ] || continue
    n=$(wc -l < "$f")
    [ "${seen[$f]:-0}" != "$n" ] && seen[$f]=$n && echo "$(date +%s.%N) epoch $((n-1)) $d"
  done
  sleep 1
done
