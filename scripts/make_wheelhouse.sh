#!/usr/bin/env bash
# Wheels of nmt's dependencies (and pytest) for a machine without internet, e.g. the GPU
# machine of scripts/gpu_check.sh, which installs from ./wheelhouse what its Python lacks.
# torch and numpy are not included (a machine with a CUDA torch has them).
#
#   scripts/make_wheelhouse.sh [DIR] [PYTHON_VERSION ...]   # default: wheelhouse 3.10 3.11 3.12 3.13
set -eu
cd "$(dirname "$0")/.."
dir=${1:-wheelhouse}
shift || true
versions=${*:-3.10 3.11 3.12 3.13}
# pyproject.toml's dependencies less torch, sacrebleu's (less numpy) and pytest's (the last
# two for Python 3.10).
packages="sentencepiece>=0.2 sacrebleu>=2.3 pyyaml>=6 tqdm>=4.60 opencc-python-reimplemented>=0.1.7
portalocker regex tabulate colorama lxml pytest>=7 iniconfig pluggy packaging pygments
exceptiongroup tomli"
mkdir -p "$dir"
for version in $versions; do
  # shellcheck disable=SC2086
  python3 -m pip download --quiet --dest "$dir" --no-deps --only-binary=:all: \
    --python-version "$version" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 $packages
done
echo "$dir: $(ls "$dir" | wc -l) wheels, $(du -sh "$dir" | cut -f1)"
