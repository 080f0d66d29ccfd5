"""Benchmark one attention layer: softmax against random feature attention, by length.

One multi-head attention layer (query/key/value/output projections around the core; d_model
256, 4 heads by default) runs forward and backward on a single sequence of 128 .. 8192 tokens,
for four cores: softmax (``F.scaled_dot_product_attention``), non-causal and causal, and RFA
(``nmt.models.rfa``), non-causal and causal (the chunked parallel form).

Reported per configuration: the best forward time and the best forward + backward time over
several repetitions (the least disturbed by other work on the machine), and the peak memory of
one forward + backward (after a warm-up one) above what the layer and its input already
held. On CPU every configuration runs in a fresh subprocess and the peak is the rise of its
resident set size: freed memory is handed back (``malloc_trim``) and the high-water mark reset
(``/proc/self/clear_refs``) just before, and ``VmHWM`` read after. torch's CPU allocations are
invisible to tracemalloc. On CUDA it is ``torch.cuda.max_memory_allocated``.

Other work on a shared CPU makes spinning OpenMP threads wait for descheduled ones; run with
``OMP_WAIT_POLICY=PASSIVE`` there (the script sets it for its workers unless already set).

The approximation error of each feature map (trig, positive, arccos) against the attention
it estimates follows (``--approximation-only``: only that, a few seconds; its raw numbers
with ``--approximation-json``).

Usage: .venv/bin/python scripts/bench_attention.py [--device cpu|cuda] [--threads 2]
       [--json results.json] [--plot docs/rfa_scaling.png]
       [--approximation-only] [--approximation-json docs/rfa/approximation.json]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import RFAConfig
from nmt.models.rfa import RandomFeatureAttention

KINDS = ("softmax", "softmax-causal", "rfa", "rfa-causal")
DEFAULT_LENGTHS = [128 * 2**i for i in range(7)]  # 128 .. 8192


class SoftmaxCore(nn.Module):
    def forward(self, q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


class AttentionLayer(nn.Module):
    """Self-attention: projections, a core on ``(batch, heads, len, head_dim)``, projection."""

    def __init__(self, core: nn.Module, d_model: int, heads: int, causal: bool) -> None:
        super().__init__()
        self.core, self.heads, self.causal = core, heads, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        context = self.core(q, k, v, causal=self.causal)
        return self.out(context.transpose(1, 2).reshape(batch, length, d_model))


def build_layer(kind: str, args: argparse.Namespace) -> AttentionLayer:
    head_dim = args.d_model // args.heads
    if kind.startswith("rfa"):
        # fixed: the figures in docs/rfa.md predate the every_step default (a redraw is one
        # randn of heads x features x head_dim per call, nothing next to the layer)
        config = RFAConfig(num_features=args.num_features, redraw="fixed")
        core = RandomFeatureAttention(args.heads, head_dim, config)
    else:
        core = SoftmaxCore()
    return AttentionLayer(core, args.d_model, args.heads, causal=kind.endswith("causal"))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def start_peak_rss() -> int:
    """Return freed memory to the OS and restart the peak RSS from now (Linux); returns the
    current RSS in KiB. Elsewhere falls back to the process's lifetime peak (``ru_maxrss``),
    which a fresh subprocess per configuration keeps meaningful."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed blocks resident otherwise
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, length: int, args: argparse.Namespace) -> dict:
    """Peak memory of one forward + backward, then the best times over repetitions."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    layer = build_layer(kind, args).to(device)
    x = torch.randn(args.batch, length, args.d_model, device=device, requires_grad=True)
    grad_out = torch.randn_like(x)

    def forward_backward() -> tuple[float, float]:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        sync()
        start = time.perf_counter()
        out = layer(x)
        sync()
        forward_done = time.perf_counter()
        out.backward(grad_out)
        sync()
        return forward_done - start, time.perf_counter() - start

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    # A warm-up first: thread pools, kernel caches and the CUDA context are not the layer's.
    forward_backward()
    layer.zero_grad(set_to_none=True)
    x.grad = None
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        first = forward_backward()
        peak_mib = (torch.cuda.max_memory_allocated() - baseline) / 2**20
    else:
        baseline = start_peak_rss()
        first = forward_backward()
        peak_mib = (peak_rss_kib() - baseline) / 1024

    times = [first]
    budget_end = time.perf_counter() + args.seconds
    while len(times) < args.min_repeats or (
        len(times) < args.max_repeats and time.perf_counter() < budget_end
    ):
        times.append(forward_backward())
    return {
        "kind": kind,
        "length": length,
        "forward_ms": 1000 * min(t[0] for t in times),
        "forward_backward_ms": 1000 * min(t[1] for t in times),
        "peak_mib": peak_mib,
        "repeats": len(times),
    }


def run_in_subprocess(kind: str, length: int, args: argparse.Namespace) -> dict:
    """A fresh process per configuration, so each peak RSS is that configuration's own."""
    command = [sys.executable, __file__, "--worker", kind, str(length)]
    options = ("device", "threads", "batch", "d_model", "heads", "num_features", "seconds")
    for name in (*options, "min_repeats", "max_repeats"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    environment = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} at length {length} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


FEATURE_MAPS = ("trig", "positive", "arccos")


def arc_cosine_kernel(x: Tensor, y: Tensor) -> Tensor:
    """Degree-1 arc-cosine kernel (Cho and Saul, 2009) between the rows of ``x`` and ``y``:
    ``|x||y| (sin t + (pi - t) cos t) / pi`` at angle ``t``."""
    norms = x.norm(dim=-1, keepdim=True) * y.norm(dim=-1, keepdim=True).transpose(-1, -2)
    cosines = (x @ y.transpose(-1, -2) / norms).clamp(-1, 1)
    angles = torch.acos(cosines)
    return norms * (torch.sin(angles) + (math.pi - angles) * cosines) / math.pi


def exact_attention(feature_map: str, q: Tensor, k: Tensor, v: Tensor, sigma: float) -> dict:
    """What RFA with ``feature_map`` estimates, computed exactly, non-causal and causal:
    ``softmax(sigma^2 q.k)`` over l2-normalised queries and keys for the Gaussian kernel
    (trig, positive), arc-cosine-kernel attention for arccos (where sigma cancels)."""
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    future = torch.ones(q.size(2), k.size(2), dtype=torch.bool).triu(1)
    if feature_map == "arccos":
        kernel = arc_cosine_kernel(q, k)
    else:
        kernel = (sigma**2 * q @ k.transpose(-1, -2)).exp()
    exact = {}
    for causal in (False, True):
        weights = kernel.masked_fill(future, 0.0) if causal else kernel
        exact[causal] = weights / weights.sum(dim=-1, keepdim=True) @ v
    return exact


def approximation_errors(head_dim: int, sigma: float = 1.5) -> list[dict]:
    """Relative error |RFA - exact| / |exact| of one core's output (Frobenius norms) on random
    inputs (4 sequences of 256 positions, 4 heads), against the attention each feature map
    estimates (:func:`exact_attention`), for 16 .. 4096 random features."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 4, 256, head_dim, generator=generator) for _ in range(3))
    rows = []
    for feature_map in FEATURE_MAPS:
        exact = exact_attention(feature_map, q, k, v, sigma)
        for num_features in (16, 64, 256, 1024, 4096):
            torch.manual_seed(num_features)
            config = RFAConfig(
                num_features=num_features,
                feature_map=feature_map,
                sigma=sigma,
                learn_sigma=False,
                redraw="fixed",
            )
            core = RandomFeatureAttention(4, head_dim, config)
            with torch.no_grad():
                for causal in (False, True):
                    error = core(q, k, v, causal=causal) - exact[causal]
                    rows.append(
                        {
                            "feature_map": feature_map,
                            "num_features": num_features,
                            "causal": causal,
                            "relative_error": round(float(error.norm() / exact[causal].norm()), 4),
                        }
                    )
    return rows


def approximation_table(rows: list[dict]) -> str:
    errors = {(r["feature_map"], r["num_features"], r["causal"]): r["relative_error"] for r in rows}
    columns = [(m, causal) for m in FEATURE_MAPS for causal in (False, True)]
    header = " | ".join(f"{m}{' causal' if causal else ''}" for m, causal in columns)
    lines = [f"| features D | {header} |", "|---:|" + "---:|" * len(columns)]
    for num_features in sorted({r["num_features"] for r in rows}):
        cells = " | ".join(f"{errors[m, num_features, causal]:.3f}" for m, causal in columns)
        lines.append(f"| {num_features} | {cells} |")
    return "\n".join(lines)


def crossover(results: list[dict], rfa: str, softmax: str) -> int | None:
    """The shortest length from which RFA's forward + backward is faster than softmax's."""
    times = {(r["kind"], r["length"]): r["forward_backward_ms"] for r in results}
    lengths = sorted({r["length"] for r in results})
    faster = [times[rfa, n] < times[softmax, n] for n in lengths]
    for index, length in enumerate(lengths):
        if all(faster[index:]):
            return length
    return None


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| length | kind | forward ms | fwd+bwd ms | peak MiB | fwd+bwd x per 2x length |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    previous = {}
    for r in sorted(results, key=lambda r: (r["length"], KINDS.index(r["kind"]))):
        earlier = previous.get(r["kind"])
        growth = f"{r['forward_backward_ms'] / earlier:.1f}" if earlier else ""
        previous[r["kind"]] = r["forward_backward_ms"]
        lines.append(
            f"| {r['length']} | {r['kind']} | {r['forward_ms']:.1f} | "
            f"{r['forward_backward_ms']:.1f} | {r['peak_mib']:.0f} | {growth} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(9, 3.6))
    styles = {"softmax": "C0-", "softmax-causal": "C0--", "rfa": "C3-", "rfa-causal": "C3--"}
    for kind in KINDS:
        rows = sorted((r for r in results if r["kind"] == kind), key=lambda r: r["length"])
        lengths = [r["length"] for r in rows]
        time_axis.plot(lengths, [r["forward_backward_ms"] for r in rows], styles[kind], label=kind)
        memory_axis.plot(lengths, [max(r["peak_mib"], 0.1) for r in rows], styles[kind])
    # Guides through the longest softmax and RFA times: slopes of quadratic and linear growth.
    longest = max(r["length"] for r in results)
    span = [min(r["length"] for r in results), longest]
    for kind, power, style in [("softmax", 2, ":"), ("rfa", 1, "-.")]:
        end = next(r for r in results if r["kind"] == kind and r["length"] == longest)
        guide = [end["forward_backward_ms"] * (n / longest) ** power for n in span]
        label = "\u221d length" + ("\u00b2" if power == 2 else "")
        time_axis.plot(span, guide, style, color="grey", linewidth=1, label=label)
    for axis, label in [(time_axis, "forward + backward (ms)"), (memory_axis, "peak memory (MiB)")]:
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("sequence length")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    time_axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-features", type=int, default=64, help="RFA random features")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing budget per config")
    parser.add_argument("--min-repeats", type=int, default=2)
    parser.add_argument("--max-repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a PNG plot here")
    parser.add_argument(
        "--approximation-only", action="store_true", help="only the approximation errors"
    )
    parser.add_argument("--approximation-json", type=Path, help="write those errors here")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")

    if args.worker:
        kind, length = args.worker
        print(json.dumps(measure(kind, int(length), args)))
        return 0

    if args.approximation_only:
        report_approximation(args)
        return 0
    results = []
    for length in args.lengths:
        for kind in args.kinds:
            if args.device == "cpu":
                result = run_in_subprocess(kind, length, args)
            else:
                result = measure(kind, length, args)
            results.append(result)
            print(
                f"{kind:15s} {length:6d}  forward {result['forward_ms']:9.1f} ms  "
                f"fwd+bwd {result['forward_backward_ms']:9.1f} ms  "
                f"peak {result['peak_mib']:8.1f} MiB  ({result['repeats']} runs)",
                flush=True,
            )
    print()
    print(markdown_table(results))
    if set(args.kinds) == set(KINDS):
        for rfa, softmax in [("rfa", "softmax"), ("rfa-causal", "softmax-causal")]:
            print(f"{rfa} faster than {softmax} from length {crossover(results, rfa, softmax)}")
    print()
    report_approximation(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.plot:
        device = torch.cuda.get_device_name() if args.device != "cpu" else "CPU"
        title = (
            f"one attention layer (d_model {args.d_model}, {args.heads} heads, batch "
            f"{args.batch}), {device}, {args.threads} threads, torch {torch.__version__}"
        )
        plot(results, args.plot, title)
    return 0


def report_approximation(args: argparse.Namespace) -> None:
    head_dim = args.d_model // args.heads
    print(f"Relative error |RFA - exact| / |exact| of one core (head_dim {head_dim}):")
    rows = approximation_errors(head_dim)
    print(approximation_table(rows))
    if args.approximation_json:
        args.approximation_json.parent.mkdir(parents=True, exist_ok=True)
        args.approximation_json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
