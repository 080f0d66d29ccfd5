#!/usr/bin/env bash
# The prepared GPU check (scripts/gpu_check.py says what it measures): finds a Python with
# torch and the package's dependencies, sets one up if needed, then runs every stage within
# the budget, writing JSON pieces and report.json to $OUT (or --out DIR, or runs/gpu_check).
#
#   scripts/gpu_check.sh                         # on a GPU machine: everything, ~9 minutes
#   scripts/gpu_check.sh --device cpu --tiny --config tiny.yaml   # the test suite's CPU run
#
# The Python: $PYTHON if set; else .venv/bin/python if it has torch; else python3 if it has
# torch (a CUDA build, say), with missing dependencies installed into .gpu-check-deps/ from
# ./wheelhouse (scripts/make_wheelhouse.sh, for machines without internet) or from PyPI.
set -u
cd "$(dirname "$0")/.." || exit 2
out=${OUT:-runs/gpu_check}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--out" ] && out=${args[$((i + 1))]}
done
mkdir -p "$out/logs"
setup_log="$out/logs/setup.log"
# What nmt and the CUDA tests import (pyproject.toml's dependencies, sacrebleu's, pytest's),
# as module=requirement; only the missing ones are installed (--no-deps: torch's numpy stays).
needs="torch=torch sentencepiece=sentencepiece>=0.2 sacrebleu=sacrebleu>=2.3 yaml=pyyaml>=6
tqdm=tqdm>=4.60 opencc=opencc-python-reimplemented>=0.1.7 portalocker=portalocker regex=regex
tabulate=tabulate colorama=colorama lxml=lxml numpy=numpy pytest=pytest>=7 iniconfig=iniconfig
pluggy=pluggy packaging=packaging pygments=pygments exceptiongroup=exceptiongroup@3.10
tomli=tomli@3.10"  # @3.10: only for Python 3.10 (3.11 has them built in)

setup_failed() {
  printf '{"ok": false, "error": "%s", "log": "%s"}\n' "$1" "$setup_log" > "$out/00-setup.json"
  echo "gpu_check: setup failed: $1 (see $setup_log)" >&2
  exit 2
}

missing() {  # the requirements of $needs whose module $1 cannot import
  "$1" - "$needs" <<'PY' 2>>"$setup_log"
import importlib.util, sys
pairs = [need.split("=", 1) for need in sys.argv[1].split()]
if sys.version_info >= (3, 11):
    pairs = [(module, req) for module, req in pairs if not req.endswith("@3.10")]
missing = [req for module, req in pairs if importlib.util.find_spec(module) is None]
print(" ".join(req.removesuffix("@3.10") for req in missing))
PY
}

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in .venv/bin/python python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>>"$setup_log"; then
      python=$candidate
      break
    fi
  done
fi
[ -n "$python" ] || setup_failed "no Python with torch: install a CUDA build of torch for python3, or run make setup"

deps=.gpu-check-deps
export PYTHONPATH="$PWD:$PWD/$deps${PYTHONPATH:+:$PYTHONPATH}"
absent=$(missing "$python")
if [ -n "$absent" ]; then
  echo "gpu_check: installing into $deps/ what $python lacks: $absent" | tee -a "$setup_log"
  if [ -d wheelhouse ]; then
    # A wheel is a zip of the installed files: unpacking the ones for this Python is an
    # install that needs neither pip nor the network.
    "$python" - "$deps" $absent <<'PY' >>"$setup_log" 2>&1 || setup_failed "no wheels in ./wheelhouse for: $absent"
import re, sys, zipfile
from pathlib import Path
target, requirements = Path(sys.argv[1]), sys.argv[2:]
python = f"cp{sys.version_info.major}{sys.version_info.minor}"
wheels = sorted(Path("wheelhouse").glob("*.whl"), reverse=True)  # newest version first
for requirement in requirements:
    name = re.split("[<>=]", requirement)[0].replace("-", "_").lower()
    fits = [w for w in wheels if w.name.lower().startswith(name + "-")
            and (f"-{python}-" in w.name or "-none-any" in w.name)]
    if not fits:
        sys.exit(f"no {python} wheel of {requirement} in wheelhouse/")
    zipfile.ZipFile(fits[0]).extractall(target)
    print("unpacked", fits[0].name)
PY
  else
    # shellcheck disable=SC2086  # the requirements are words on purpose
    "$python" -m pip install --quiet --no-deps --target "$deps" --timeout 20 --retries 1 \
      $absent >>"$setup_log" 2>&1 || setup_failed "pip could not install: $absent"
  fi
  absent=$(missing "$python")
  [ -z "$absent" ] || setup_failed "still missing after installing: $absent"
fi
printf '{"ok": true, "python": "%s"}\n' "$(command -v "$python")" > "$out/00-setup.json"
exec "$python" scripts/gpu_check.py "$@"
