#!/usr/bin/env bash
# A/B of the default experiment's CPU training, an earlier commit against the working tree:
# short runs alternated (tokens/s of each log window after the first; the load average at
# the end), then whether 20 steps give bit-identical parameters. Takes about 8 minutes; run
# it under `flock /tmp/nmt-cpu.lock` on a shared machine. Needs the prepared data (make data).
#
#   scripts/ab_cpu_training.sh REV [ROUNDS] [STEPS]     # e.g. scripts/ab_cpu_training.sh 0972430
set -eu
cd "$(dirname "$0")/.."
rev=$1 rounds=${2:-3} steps=${3:-60}
work=$(mktemp -d /tmp/nmt-ab.XXXXXX)
mkdir -p "$work/old" && git archive "$rev" | tar -x -C "$work/old"
train() {  # code_dir run_name steps: one run of the default config
  env PYTHONPATH="$1" .venv/bin/python -m nmt train --config configs/tatoeba_zh_en_transformer.yaml \
    training.max_steps="$3" training.log_every=20 training.valid_every=100000 \
    training.valid_max_sentences=1 training.tensorboard=false \
    training.output_dir="$work/runs/$2" --restart > "$work/$2.log" 2>&1
}
windows() {  # run_name: tokens/s of the log windows after the first
  .venv/bin/python -c "import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
print([e['tokens_per_s'] for e in events if e['event'] == 'train'][1:])" \
    "$work/runs/$1/tatoeba_zh_en_transformer/metrics.jsonl"
}
for round in $(seq "$rounds"); do
  for side in old new; do
    code=$PWD && [ "$side" = old ] && code=$work/old
    train "$code" "$side$round" "$steps"
    echo "$side ($rev vs working tree) round $round: $(windows "$side$round") tokens/s, load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
train "$work/old" old-bits 20 && train "$PWD" new-bits 20
.venv/bin/python - "$work/runs" <<'PY'
import sys, torch
runs = sys.argv[1]
a, b = (torch.load(f"{runs}/{n}/tatoeba_zh_en_transformer/last.pt", weights_only=True)["model"]
        for n in ("old-bits", "new-bits"))
print("bit-identical parameters after 20 steps:", all(torch.equal(a[k], b[k]) for k in a))
PY
rm -rf "$work"
