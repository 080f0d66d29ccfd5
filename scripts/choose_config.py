"""The experiment ``make`` runs: CONFIG when given, else the GPU-sized config when torch sees
a CUDA GPU, else the CPU-sized one. Prints the config's path; says which and why on stderr.

Usage: python scripts/choose_config.py --cpu CPU.yaml --gpu GPU.yaml [CONFIG]
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="the config asked for (CONFIG=...), if any")
    parser.add_argument("--cpu", required=True, help="the config for a machine without a GPU")
    parser.add_argument("--gpu", required=True, help="the config for a machine with a CUDA GPU")
    args = parser.parse_args()
    if args.config:
        print(args.config)
        return
    import torch

    if torch.cuda.is_available():
        gpus = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        chosen, why = args.gpu, f"torch sees a CUDA GPU ({gpus})"
    else:
        chosen, why = args.cpu, "torch sees no CUDA GPU"
    print(f"make: {why}: using {chosen} (CONFIG=... chooses another)", file=sys.stderr)
    print(chosen)


if __name__ == "__main__":
    main()
