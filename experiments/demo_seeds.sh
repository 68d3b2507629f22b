#!/usr/bin/env bash
# Runs one demo-length setting of the train command over several seeds and keeps what each run
# printed: the closing table (each group, their mean, the baseline, the differences).
#   experiments/demo_seeds.sh NAME "0 1 2" --flagfile=configs/demo.flags [more train flags]
# writes experiments/results/demo_seeds_NAME.txt; model_dirs go under runs/demo_seeds/NAME_seedS.
set -euo pipefail
name=$1 seeds=$2
shift 2
out=experiments/results/demo_seeds_${name}.txt
echo "# python -m tf_codistill.train $* --seed=S --model_dir=runs/demo_seeds/${name}_seedS" > "$out"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start" >> "$out"
for seed in $seeds; do
  dir=runs/demo_seeds/${name}_seed${seed}
  start=$(date +%s)
  echo "" >> "$out"
  echo "\$ seed=$seed" >> "$out"
  python -m tf_codistill.train "$@" --seed="$seed" --model_dir="$dir" 2>&1 \
    | grep -v '^\[' | tee -a "$out" > /dev/null
  echo "(wall clock $(( $(date +%s) - start )) s)" >> "$out"
done
