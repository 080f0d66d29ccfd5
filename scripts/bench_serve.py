"""``nmt serve`` under load: throughput, latency and memory with 1, 8 and 32 concurrent
clients, against ``nmt evaluate``'s speed on the same sentences (figures go to
docs/benchmarks.md, ``## Server under load``).

1. Baseline: ``nmt evaluate`` on the sentences (translation of the whole file in batches,
   timed without loading: what ``nmt translate --input FILE`` spends translating), with the
   same engine, beam and batch size as the server.
2. ``nmt serve`` in a child process; for each client count, that many threads each send
   single-sentence LibreTranslate requests (``POST /translate``, JSON, keep-alive) taking
   the next sentence until ``--requests`` are done or ``--seconds`` have passed.
3. Per level: sentences/s, latency p50/p95/p99, errors, mean requests per search call (from
   ``/metrics``), the server's resident memory (current and peak).

The load generator runs on the same machine and takes some of its CPU: the ratio to the
baseline is a lower bound of what a separate client machine would see.

Usage (the trained default model, the canonical test split; 2 to 4 minutes per engine):
    .venv/bin/python scripts/bench_serve.py --checkpoint runs/tatoeba_zh_en_transformer/best.pt
    .venv/bin/python scripts/bench_serve.py --checkpoint runs/tatoeba_zh_en_transformer/ct2-int8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from serve_server import Server, free_port  # noqa: E402  (the tests' server helpers)


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


def baseline(args: argparse.Namespace, sources: Path) -> dict:
    """``nmt evaluate``'s report on the sentences (the references are the sources: only the
    speed counts here)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [sys.executable, "-m", "nmt", "evaluate", "--checkpoint", str(args.checkpoint),
             "--engine", args.engine, "--src", str(sources), "--ref", str(sources),
             "--beam", str(args.beam), "--batch-size", str(args.batch_size),
             "--report", report.name],
            check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        return json.loads(Path(report.name).read_text(encoding="utf-8"))


def start_server(args: argparse.Namespace) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", "serve", "--checkpoint", str(args.checkpoint),
         "--engine", args.engine, "--beam", str(args.beam), "--batch-size", str(args.batch_size),
         "--batch-wait-ms", str(args.batch_wait_ms), "--port", str(port),
         "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("nmt serve exited")
        try:
            if server.request("GET", "/health", timeout=2).status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    sys.exit("nmt serve did not start")


def run_level(
    server: Server, sentences: list[str], args: argparse.Namespace, clients: int
) -> Level:
    level, lock = Level(clients), threading.Lock()
    next_index = iter(range(min(args.requests, len(sentences))))
    deadline = time.monotonic() + args.seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            body = json.dumps({"q": sentences[index], "source": args.source, "target": args.target})
            start = time.perf_counter()
            try:
                connection.request("POST", "/translate", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                if ok:
                    level.latencies.append(elapsed)
                else:
                    level.errors += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - start
    return level


def memory_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MiB (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--engine", default="auto", choices=["auto", "torch", "ctranslate2"])
    parser.add_argument("--src", type=Path, default=Path("data/tatoeba-zh-en/test.zh"))
    parser.add_argument("--source", default="zh")
    parser.add_argument("--target", default="en")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="per level, at most")
    parser.add_argument("--seconds", type=float, default=120, help="per level, at most")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-wait-ms", type=float, default=5)
    args = parser.parse_args()
    sentences = [line for line in args.src.read_text(encoding="utf-8").splitlines() if line.strip()]

    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as file:
        file.write("\n".join(sentences[: args.requests]) + "\n")
        file.flush()
        report = baseline(args, Path(file.name))
    base = report["sentences_per_second"]
    print(f"baseline (nmt evaluate, {report['sentences']} sentences, beam {args.beam}, "
          f"batches of {args.batch_size}, {report['engine']}, {report['threads']} threads): "
          f"{base:.1f} sentences/s", flush=True)  # fmt: skip

    server = start_server(args)
    try:
        for sentence in sentences[:20]:  # warm-up
            server.post_json(
                "/translate", {"q": sentence, "source": args.source, "target": args.target}
            )
        print("\n| clients | requests | sentences/s | vs baseline | p50 ms | p95 ms | p99 ms "
              "| errors | requests per search call | RSS MiB (peak) |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in args.clients:
            before = server.metrics()
            level = run_level(server, sentences, args, clients)
            after = server.metrics()
            calls = after["nmt_batch_requests_count"] - before["nmt_batch_requests_count"]
            shared = (after["nmt_batch_requests_sum"] - before["nmt_batch_requests_sum"]) / max(
                calls, 1
            )
            rss, peak = memory_mib(server.process.pid)
            done = len(level.latencies)
            rate = done / level.seconds
            p50, p95, p99 = (1000 * percentile(level.latencies, q) for q in (50, 95, 99))
            print(f"| {clients} | {done} | {rate:.1f} | {rate / base:.0%} | {p50:.0f} | {p95:.0f} "
                  f"| {p99:.0f} | {level.errors} | {shared:.1f} | {rss:.0f} ({peak:.0f}) |",
                  flush=True)  # fmt: skip
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


if __name__ == "__main__":
    main()
