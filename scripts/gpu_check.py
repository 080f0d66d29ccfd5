"""The prepared GPU check: every GPU claim of the project measured in one go, under a budget.

Run through ``scripts/gpu_check.sh`` (which finds or sets up a Python with torch first).
Stages, in order of what they prove per second spent:

1. ``environment``: GPU, driver, torch, CPU count.
2. ``cuda_tests``: the test suite's CUDA-marked tests (``tests/test_cuda.py``).
3. ``prepare``: the experiment's data (``nmt prepare``).
4. ``resume_after_kill``: a training run killed with SIGKILL after its first validation,
   then resumed by the same command to its end.
5. ``torchrun``: two processes (one GPU each, or sharing one) with early stopping and a
   validation on the last step.
6. ``train``: the experiment for a few minutes: target tokens/s, MFU, peak GPU memory.
7. ``evaluate``: its best checkpoint on the test split (beam 5 and greedy: BLEU and
   sentences/s) and on the dev split.
8. ``throughput``: forward+backward+Adam of the experiment's model on fixed batches, eager
   and compiled (``scripts/bench_models.py``): what ``training.compile`` gains.

Each stage writes ``OUT/NN-stage.json`` as soon as it ends and ``OUT/report.json`` gathers
them with a summary, so a run cut short still returns what finished; each has a time limit
within ``--budget``. Commands' output goes to ``OUT/logs/``, the runs' checkpoints to
``--work`` (default runs/gpu_check_runs/). Exit status 0 when every stage that ran passed.

Usage: scripts/gpu_check.sh [--out DIR] [--device cuda] [--budget 540] [--config YAML]
       [--override section.key=value ...] [--train-minutes 3] [--stages NAME ...] [--tiny]
       [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nmt.config import load_config  # noqa: E402  (light: no torch)

DEFAULT_CONFIG = "configs/tatoeba_zh_en_transformer_gpu.yaml"


class StageFailed(Exception):
    """A stage's check did not hold; the message says which."""


class Check:
    """The stages' common machinery: time budget, commands with logs, JSON pieces."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out
        self.logs = args.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget
        self.config = load_config(args.config, args.override)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.report: dict[str, Any] = {
            "command": " ".join([sys.argv[0], *sys.argv[1:]]),
            "config": str(args.config),
            "overrides": args.override,
            "device": args.device,
            "budget_s": args.budget,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "stages": {},
        }

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def stage(
        self, number: int, name: str, limit: float, run: Callable[[float], dict[str, Any]]
    ) -> None:
        """Run stage ``number`` within ``limit`` seconds (less if the budget has less left)."""
        seconds = min(limit, self.remaining())
        started = time.monotonic()
        if seconds < 10:
            result: dict[str, Any] = {"ok": None, "skipped": "no time left in the budget"}
        else:
            try:
                result = {"ok": True, **run(seconds)}
            except StageFailed as error:
                result = {"ok": False, "error": str(error)}
            except subprocess.TimeoutExpired as error:
                result = {"ok": False, "error": f"timed out after {error.timeout:.0f} s"}
            except Exception as error:  # a broken stage must not cost the ones after it
                result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        result["seconds"] = round(time.monotonic() - started, 1)
        self.report["stages"][name] = result
        piece = self.out / f"{number:02d}-{name}.json"  # 00: the set-up, gpu_check.sh
        piece.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.write_report()
        status = {True: "ok", False: "FAILED", None: "skipped"}[result["ok"]]
        print(f"[gpu_check] {name}: {status} ({result['seconds']} s)", flush=True)

    def write_report(self) -> None:
        self.report["summary"] = summary(self.report["stages"])
        text = json.dumps(self.report, indent=2, ensure_ascii=False) + "\n"
        (self.out / "report.json").write_text(text, encoding="utf-8")

    def command(
        self, name: str, arguments: list[str], timeout: float, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``arguments`` with its output in ``logs/NAME.log``; on time-out the whole
        process group is killed (torchrun's workers too)."""
        log = self.logs / f"{name}.log"
        start = log.stat().st_size if log.exists() else 0
        process = self.start(name, arguments, env)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise
        with open(log, "rb") as handle:  # this command's output only
            handle.seek(start)
            output = handle.read().decode("utf-8", errors="replace")
        return subprocess.CompletedProcess(arguments, process.returncode, output, "")

    def start(self, name: str, arguments: list[str], env: dict | None = None) -> subprocess.Popen:
        """Start ``arguments`` in a process group of its own, appending to ``logs/NAME.log``."""
        with open(self.logs / f"{name}.log", "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(arguments)}\n")
            log.flush()
            return subprocess.Popen(
                arguments,
                cwd=REPO,
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def nmt(self, *arguments: str) -> list[str]:
        return [sys.executable, "-m", "nmt", *arguments]

    def train_command(self, output_dir: Path, *overrides: str) -> list[str]:
        config = ["--config", str(self.args.config), *self.args.override]
        return self.nmt("train", *config, f"training.output_dir={output_dir}", *overrides)

    def short_run(self, output_dir: Path, valid_every: int, max_steps: int, patience: int = 0):
        """``nmt train`` bounded by steps alone, validating on a few dev sentences."""
        return self.train_command(
            output_dir,
            f"training.valid_every={valid_every}",
            f"training.max_steps={max_steps}",
            f"training.early_stopping_patience={patience}",
            "training.valid_max_sentences=64",
            "training.keep_checkpoints=1",
            "training.max_minutes=0",
            "training.max_epochs=0",
        )


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def require(condition: bool, message: str) -> None:
    if not condition:
        raise StageFailed(message)


def require_success(result: subprocess.CompletedProcess, what: str) -> None:
    tail = "\n".join(result.stdout.strip().splitlines()[-8:])
    require(result.returncode == 0, f"{what} exited with {result.returncode}:\n{tail}")


# --- the stages ------------------------------------------------------------------------------


def environment(check: Check, timeout: float) -> dict[str, Any]:
    probe = (
        "import json, os, platform, torch\n"
        "cuda = torch.cuda.is_available()\n"
        "print(json.dumps({'python': platform.python_version(), 'torch': torch.__version__,\n"
        " 'cuda_available': cuda, 'cuda_version': torch.version.cuda,\n"
        " 'gpus': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],\n"
        " 'gpu_memory_gib': [round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)\n"
        "                    for i in range(torch.cuda.device_count())],\n"
        " 'cpus': os.cpu_count()}))\n"
    )
    result = check.command("environment", [sys.executable, "-c", probe], timeout)
    require_success(result, "the torch probe")
    info = json.loads(result.stdout.strip().splitlines()[-1])
    smi = (
        subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        if _has("nvidia-smi")
        else None
    )
    info["nvidia_smi"] = smi.stdout.strip() if smi is not None else None
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    info["commit"] = git.stdout.strip() or None
    if check.args.device == "cuda":
        require(info["cuda_available"], "torch sees no CUDA GPU")
    return info


def _has(program: str) -> bool:
    return any((Path(d) / program).is_file() for d in os.environ.get("PATH", "").split(os.pathsep))


def cuda_tests(check: Check, timeout: float) -> dict[str, Any]:
    junit = check.out / "cuda_tests.xml"
    arguments = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-rs"]
    arguments += ["-p", "no:cacheprovider", f"--junitxml={junit}"]
    result = check.command("cuda_tests", arguments, timeout)
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [
        case.get("name")
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    require(result.returncode in (0, 5) and not failed, f"failed: {failed or result.returncode}")
    if check.args.device == "cuda":
        require(counts["skipped"] == 0, f"{counts['skipped']} CUDA tests were skipped")
    return {**counts, "failed": failed}


def prepare(check: Check, timeout: float) -> dict[str, Any]:
    config = ["--config", str(check.args.config), *check.args.override]
    result = check.command("prepare", check.nmt("prepare", *config), timeout)
    require_success(result, "nmt prepare")
    return {"summary": result.stdout.strip().splitlines()[-6:]}


def resume_after_kill(check: Check, timeout: float) -> dict[str, Any]:
    """SIGKILL (no chance to save) after the first validation, then the same command."""
    every = 5 if check.args.tiny else 20
    output = check.args.work / "kill"
    command = check.short_run(output, every, max_steps=4 * every)
    run_dir = output / check.config.name
    deadline = time.monotonic() + timeout
    process = check.start("resume_after_kill", command)
    while not (run_dir / "last.pt").exists() and process.poll() is None:
        require(time.monotonic() < deadline, "no checkpoint before the time limit")
        time.sleep(0.05)
    finished_first = process.poll() is not None
    kill_group(process)
    require(not finished_first, "the run ended before it could be killed")
    killed_after = max(
        (e["step"] for e in read_events(run_dir) if e["event"] == "validation"), default=0
    )
    result = check.command("resume_after_kill", command, deadline - time.monotonic())
    require_success(result, "the resumed run")
    require("resumed from" in result.stdout, "the second run did not resume")
    done = [e for e in read_events(run_dir) if e["event"] == "done"]
    require(bool(done) and done[-1]["step"] == 4 * every, f"the resumed run ended at {done}")
    resumed_line = next(line for line in result.stdout.splitlines() if "resumed from" in line)
    resumed_at = int(re.search(r"at step (\d+)", resumed_line).group(1))
    # The kill races the run, so the last validation may be any of the first few; what must
    # hold is that the run resumed from a validated checkpoint no later than the kill.
    require(0 < resumed_at <= killed_after and resumed_at % every == 0,
            f"resumed at step {resumed_at} after a kill at step {killed_after}")  # fmt: skip
    return {"killed_after_validation_at_step": killed_after, "resumed_at_step": resumed_at,
            "resumed": resumed_line.strip(), "final_step": done[-1]["step"]}  # fmt: skip


def torchrun(check: Check, timeout: float) -> dict[str, Any]:
    """Two ranks, early stopping on, the last step a validation step (it used to hang)."""
    every = 4 if check.args.tiny else 10
    output = check.args.work / "torchrun"
    train = check.short_run(output, every, max_steps=3 * every, patience=1)
    arguments = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    arguments += ["--nproc_per_node", "2", *train[1:]]  # "-m nmt train ..."
    env = {**check.env, "OMP_NUM_THREADS": "1"} if check.args.device == "cpu" else None
    result = check.command("torchrun", arguments, timeout, env)
    require_success(result, "torchrun")
    events = read_events(output / check.config.name)
    done = [e for e in events if e["event"] == "done"]
    validations = [e["step"] for e in events if e["event"] == "validation"]
    require(len(done) == 1 and result.stdout.count("done:") == 1, "expected one 'done' from rank 0")
    require(validations[-1] == done[0]["step"], "the last step was not validated")
    started = next((line for line in result.stdout.splitlines() if "processes" in line), "")
    return {"stop_reason": done[0]["stop_reason"], "validations": validations,
            "final_step": done[0]["step"], "started": started.strip()}  # fmt: skip


def train(check: Check, timeout: float) -> dict[str, Any]:
    """The experiment for a few minutes (what the budget allows)."""
    # Time for the stages after this one, and for starting up and the final validation.
    reserve = sum(
        RESERVE[stage] for stage in ("evaluate", "throughput") if stage in check.args.stages
    )
    reserve = 20 if check.args.tiny else reserve
    minutes = min(check.args.train_minutes, (timeout - reserve - 60) / 60)
    require(minutes > 0.2, "too little time left to train")
    output = check.args.work / "train"
    limit = (
        ["training.max_steps=30"] if check.args.tiny else [f"training.max_minutes={minutes:.2f}"]
    )
    result = check.command("train", check.train_command(output, *limit), timeout - reserve)
    require_success(result, "nmt train")
    events = read_events(output / check.config.name)
    windows = [e for e in events if e["event"] == "train"][1:]  # the first holds the warm-up
    done = [e for e in events if e["event"] == "done"][-1]
    figures = {
        "checkpoint": str(output / check.config.name / "best.pt"),
        "steps": done["step"],
        "minutes": done["minutes"],
        "stop_reason": done["stop_reason"],
        "best_dev_bleu_greedy": done["best_dev_bleu"],
        "best_step": done["best_step"],
        "peak_gpu_memory_mb": done.get("peak_gpu_memory_mb"),
        "peak_memory_mb": done["peak_memory_mb"],
        "dev_bleu_curve": [(e["step"], e["minutes"], e["dev_bleu"]) for e in events if e["event"] == "validation"],
    }  # fmt: skip
    if windows:
        figures["tokens_per_s_median"] = statistics.median(e["tokens_per_s"] for e in windows)
    if windows and "mfu" in windows[0]:
        figures["mfu_median"] = statistics.median(e["mfu"] for e in windows)
    return figures


def evaluate(check: Check, timeout: float) -> dict[str, Any]:
    train_stage = check.report["stages"].get("train", {})
    require(train_stage.get("ok") is True, "no trained checkpoint (the train stage failed)")
    checkpoint = train_stage["checkpoint"]
    data = Path(check.config.data.output_dir)
    src, tgt = check.config.data.src_lang, check.config.data.tgt_lang
    results = {}
    runs = {"test_beam5": ("test", 5), "test_greedy": ("test", 1), "dev_beam5": ("dev", 5)}
    deadline = time.monotonic() + timeout
    for name, (split, beam) in runs.items():
        report = check.out / f"evaluate-{name}.json"
        arguments = check.nmt(
            "evaluate", "--checkpoint", checkpoint, "--beam", str(beam), "--device", check.args.device,
            "--src", str(data / f"{split}.{src}"), "--ref", str(data / f"{split}.{tgt}"),
            "--report", str(report),
        )  # fmt: skip
        require_success(check.command("evaluate", arguments, deadline - time.monotonic()), name)
        scores = json.loads(report.read_text(encoding="utf-8"))
        keys = ("bleu", "chrf", "sentences", "sentences_per_second", "tokens_per_second")
        results[name] = {key: scores[key] for key in keys} | {
            "batch_size": scores["decoding"]["batch_size"],
            "device": scores["device"],
        }
    return results


def throughput(check: Check, timeout: float) -> dict[str, Any]:
    report = check.out / "throughput.json"
    tiny = check.args.tiny
    arguments = [sys.executable, "scripts/bench_models.py", "--models", str(check.args.config)]
    arguments += ["--device", check.args.device, "--precision", check.config.training.precision]
    budget = check.config.training.max_tokens  # the config's batches, and twice as large
    arguments += ["--max-tokens", str(budget), *([] if tiny else [str(2 * budget)])]
    arguments += ["--repeats", "2" if tiny else "10", "--decode-steps", "--json", str(report)]
    if check.args.device == "cuda":
        arguments.append("--compile")  # inductor on a CPU needs minutes: GPU only
    result = check.command("throughput", arguments, timeout)
    if report.is_file():  # partial results too
        rows = json.loads(report.read_text(encoding="utf-8"))
    else:
        rows = {}
    require_success(result, "bench_models.py")
    return rows


RESERVE = {"evaluate": 60, "throughput": 150}  # seconds the train stage leaves them
STAGES: list[tuple[str, Callable[[Check, float], dict[str, Any]], float]] = [
    ("environment", environment, 60),
    ("cuda_tests", cuda_tests, 120),
    ("prepare", prepare, 120),
    ("resume_after_kill", resume_after_kill, 150),
    ("torchrun", torchrun, 150),
    ("train", train, 600),
    ("evaluate", evaluate, 120),
    ("throughput", throughput, 240),
]


# --- the summary -----------------------------------------------------------------------------


def summary(stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline figures, with the issue's targets beside them."""

    def get(stage: str, *keys: str) -> Any:
        value: Any = stages.get(stage, {})
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    figures = {
        "all_ok": all(s.get("ok") is not False for s in stages.values()),
        "failed": [name for name, s in stages.items() if s.get("ok") is False],
        "gpus": get("environment", "gpus"),
        "train_tokens_per_s": get("train", "tokens_per_s_median"),
        "train_mfu": get("train", "mfu_median"),
        "train_peak_gpu_memory_mb": get("train", "peak_gpu_memory_mb"),
        "train_minutes": get("train", "minutes"),
        "test_bleu_beam5": get("evaluate", "test_beam5", "bleu"),
        "dev_bleu_beam5": get("evaluate", "dev_beam5", "bleu"),
        "beam5_sentences_per_s": get("evaluate", "test_beam5", "sentences_per_second"),
        "greedy_sentences_per_s": get("evaluate", "test_greedy", "sentences_per_second"),
    }
    figures["targets"] = {
        "mfu >= 0.25": None if figures["train_mfu"] is None else figures["train_mfu"] >= 0.25,
        "beam5 >= 2000 sentences/s": None
        if figures["beam5_sentences_per_s"] is None
        else figures["beam5_sentences_per_s"] >= 2000,
        "test BLEU >= 32 (needs a full run, not this short one)": None
        if figures["test_bleu_beam5"] is None
        else figures["test_bleu_beam5"] >= 32,
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "runs" / "gpu_check")
    )
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all stages")
    parser.add_argument("--config", type=Path, default=REPO / DEFAULT_CONFIG)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "runs" / "gpu_check_runs",
        help="where the runs' checkpoints go (not OUT: they are large)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU self-test)")
    parser.add_argument("--stages", nargs="+", default=[name for name, _, _ in STAGES])
    args = parser.parse_args()
    args.out, args.work = args.out.resolve(), args.work.resolve()
    args.config = args.config.resolve()
    args.override.append(f"training.device={args.device}")
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args)
    print(
        f"[gpu_check] {len(args.stages)} stages within {args.budget:.0f} s; report: {args.out / 'report.json'}"
    )
    for number, (name, run, limit) in enumerate(STAGES, start=1):
        if name in args.stages:
            check.stage(number, name, limit, lambda seconds, run=run: run(check, seconds))
    check.report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    check.write_report()
    print(json.dumps(check.report["summary"], indent=2))
    return 0 if check.report["summary"]["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
