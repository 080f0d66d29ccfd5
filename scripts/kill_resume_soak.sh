#!/usr/bin/env bash
# Kill -9 soak: a small model is trained twice on the embedded Tatoeba split, once without
# interruption and once killed with SIGKILL at random moments KILLS times, each time resumed
# with the same command. The final weights of both runs must be equal bit for bit.
#
#   scripts/kill_resume_soak.sh [KILLS] [WORK_DIR]      (defaults: 10, a temporary folder)
#
# Exit status 0 when the weights are identical, 1 otherwise. SIGKILL gives the trainer no
# chance to save: the run loses what it did since its last checkpoint (every valid_every
# steps) and must redo it exactly, and a kill in the middle of a checkpoint write must leave
# the previous last.pt intact.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-10}
work=${2:-$(mktemp -d -t nmt-soak-XXXX)}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$work"

settings=(
  model.transformer.d_model=64 model.transformer.heads=2 model.transformer.ff_size=128
  model.transformer.encoder_layers=1 model.transformer.decoder_layers=1
  data.vocab.src_size=4000 data.vocab.tgt_size=2000 "data.output_dir=$work/data"
  training.max_steps=1000 training.valid_every=25 training.valid_max_sentences=50
  training.log_every=25 training.max_tokens=2000 training.max_minutes=0
  training.threads=1 training.deterministic=true training.tensorboard=false
  training.keep_checkpoints=0 "training.output_dir=$work/runs"
)
train() {  # train NAME [extra overrides]: run (or resume) one experiment in the background
  local name=$1
  shift
  $python -m nmt train --config configs/tatoeba_zh_en_transformer.yaml "${settings[@]}" \
    "name=$name" "$@" >>"$work/$name.log" 2>&1 &
  pid=$!
}

echo "soak: preparing data and the uninterrupted run in $work" >&2
train uninterrupted
wait "$pid" || { tail -n 5 "$work/uninterrupted.log" >&2; exit 2; }

start=$(date +%s)
done_kills=0
for ((i = 1; i <= kills; i++)); do
  train killed
  sleep "$(awk -v seed="$RANDOM" 'BEGIN { srand(seed); printf "%.2f", 2 + 10 * rand() }')"
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    done_kills=$((done_kills + 1))
    step=$($python -c "import sys; from nmt.checkpoint import load_checkpoint as l
try: print(l(sys.argv[1]).step)
except Exception as e: print('none')" "$work/runs/killed/last.pt")
    echo "soak: kill $done_kills at $(($(date +%s) - start)) s, last.pt at step $step" >&2
  else
    wait "$pid" || true
    break # the run finished before the kill
  fi
done
train killed # the final resume, to the end
wait "$pid" || { tail -n 5 "$work/killed.log" >&2; exit 2; }

$python - "$work/runs/uninterrupted/last.pt" "$work/runs/killed/last.pt" "$done_kills" <<'PY'
import sys

import torch

from nmt.checkpoint import load_checkpoint

a, b = (load_checkpoint(path) for path in sys.argv[1:3])
same = a.step == b.step and a.model.keys() == b.model.keys()
same = same and all(torch.equal(a.model[name], b.model[name]) for name in a.model)
kills = sys.argv[3]
verdict = "identical" if same else "DIFFERENT"
print(f"soak: {kills} kill -9s, final step {b.step} vs {a.step}: weights {verdict} bit for bit")
sys.exit(0 if same else 1)
PY
