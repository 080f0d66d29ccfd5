#!/usr/bin/env bash
# A/B of decoding speed, an earlier commit against the working tree: scripts/bench_decoding.py
# on the test split for each checkpoint, the two sides alternated (sentences/s, BLEU; the same
# BLEU on both sides means the same outputs). Run it under `flock /tmp/nmt-cpu.lock` on a
# shared machine. Needs the prepared data (make data) and trained checkpoints.
#
#   scripts/ab_decoding.sh REV ROUNDS CHECKPOINT...   # e.g. scripts/ab_decoding.sh bdd2153 2 runs/x/best.pt
set -eu
cd "$(dirname "$0")/.."
rev=$1 rounds=$2
shift 2
work=$(mktemp -d /tmp/nmt-ab.XXXXXX)
git archive "$rev" | tar -x -C "$work"
checkpoints=()
for checkpoint in "$@"; do checkpoints+=(--checkpoint "$checkpoint"); done
for round in $(seq "$rounds"); do
  for side in old new; do
    code=$PWD && [ "$side" = old ] && code=$work
    echo "$side ($rev vs working tree) round $round, load $(cut -d' ' -f1 /proc/loadavg):"
    env PYTHONPATH="$code" .venv/bin/python "$code/scripts/bench_decoding.py" --check 0 \
      "${checkpoints[@]}" | grep '^| [^-m]'
  done
done
rm -rf "$work"
