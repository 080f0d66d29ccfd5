"""The training loop, in one place (the command is ``nmt/commands/train.py``).

Reading order: :func:`train` sets everything up, restores a stopped run if there is one,
then loops over epochs of token-budget batches; every ``valid_every`` steps it validates
(dev loss, perplexity, BLEU/chrF) and writes checkpoints. :meth:`Trainer.decide_stop` is the
one place that decides to stop and why: ``max_steps``, ``max_epochs``, ``max_minutes`` (all
counted across resumes), early stopping, or SIGINT/SIGTERM (after saving).

Resuming restores the model, optimiser, schedule, gradient scaler, random states, step and
position in the data order, so a resumed run continues exactly where the stopped one was.
Under ``torchrun`` every rank trains on its share of the batches (DistributedDataParallel);
only rank 0 validates, writes files and logs, and every rank keeps the same progress.

Keeping a GPU busy: batches are collated (and pinned) ahead in DataLoader workers
(``nmt/data/loader.py``) and copied without blocking; the step itself never waits for the
GPU: losses stay on the device until a log step or a save reads them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from nmt import distributed
from nmt.checkpoint import (
    TRAINING_STATE,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    step_checkpoints,
)
from nmt.config import Config, DecodingSettings
from nmt.config import validate as validate_config
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.loader import StepInput, StepPlan, step_loader
from nmt.data.prepare import PreparedData, prepare_data
from nmt.data.readers import read_lines
from nmt.data.vocab import PAD_ID
from nmt.devices import resolve_device
from nmt.distributed import Ranks
from nmt.errors import CheckpointError, NmtError
from nmt.evaluation import score
from nmt.flops import FlopCounter, peak_flops
from nmt.models import build_model
from nmt.schedules import LearningRateSchedule, label_smoothed_nll, set_lr
from nmt.translator import Translator


class TrainingError(NmtError):
    """Training cannot go on (for example the loss became NaN)."""


@dataclass
class Progress:
    """Everything about where a run is, saved in every checkpoint (and the same on every
    rank)."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already consumed (this rank's share)
    seconds: float = 0.0  # training wall-clock time so far, across resumes
    best_bleu: float = -1.0
    best_step: int = 0
    validations_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation


# --- set-up -----------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def random_states() -> dict[str, Any]:
    """The random states to save; all CPU tensors (CUDA's too: one per GPU)."""
    states = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` saved. torch takes random states only as CPU byte
    tensors, so they are moved there whatever device a loader put them on."""
    random.setstate(_as_python_state(states["python"]))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        # A run resumed on fewer GPUs than it was saved on restores those it has.
        cuda_states = [state.cpu() for state in states["cuda"][: torch.cuda.device_count()]]
        torch.cuda.set_rng_state_all(cuda_states)


def _as_python_state(state: Any) -> tuple:
    # torch.save keeps tuples, but be lenient with lists from other writers.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """Restore a gradient scaler; a run saved without one (fp32, bf16) resumed in fp16
    starts scaling afresh (a disabled scaler saves an empty state, which an enabled one
    refuses)."""
    if state:
        scaler.load_state_dict(state)


def build_optimizer(
    model: nn.Module, config: Config, device: torch.device
) -> torch.optim.Optimizer:
    """Adam or AdamW; on CUDA the fused implementation (one kernel for all parameters)."""
    t = config.training
    optimizer_class = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(
        model.parameters(),
        lr=t.lr,
        betas=tuple(t.betas),
        eps=t.eps,
        weight_decay=t.weight_decay,
        fused=True if device.type == "cuda" else None,
    )


def build_schedule(config: Config) -> LearningRateSchedule:
    t = config.training
    return LearningRateSchedule(
        t.schedule, t.lr, t.warmup_steps, t.plateau_factor, t.plateau_patience, t.min_lr
    )


def data_workers(setting: str | int, device: torch.device) -> int:
    """Processes collating batches ahead: ``auto`` gives 2 to feed a GPU and none on a CPU,
    whose cores are all busy training (a worker would take one from the model)."""
    if setting == "auto":
        return 2 if device.type == "cuda" else 0
    return int(setting)


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to save and stop at the next step boundary."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal_name is not None:  # a second Ctrl-C means: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


def peak_memory_mb() -> float:
    """Peak resident memory of this process (CPU RAM; GPU memory is separate)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def peak_gpu_memory_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated by tensors on ``device`` (None off CUDA)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


# --- validation ---------------------------------------------------------------------------


@torch.no_grad()
def validate(
    model: nn.Module, data: PreparedData, config: Config, device: torch.device
) -> dict[str, Any]:
    """Dev loss and perplexity (teacher-forced) and dev BLEU/chrF (search, detokenised)."""
    model.eval()
    dev = data.encoded("dev")
    sampler = TokenBatchSampler(
        dev.src_lengths, dev.tgt_lengths, config.training.max_tokens, shuffle=False
    )
    total_loss, total_tokens = torch.zeros((), device=device), 0
    for indices in sampler.batches(0):
        batch = collate(dev, indices)
        total_tokens += batch.ntokens
        batch = batch.to(device)
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        total_loss += label_smoothed_nll(logits, batch.tgt_out, 0.0, PAD_ID)
    sources_path, references_path = data.text_paths("dev")
    sources, references = read_lines(sources_path), read_lines(references_path)
    if config.training.valid_max_sentences:
        sources = sources[: config.training.valid_max_sentences]
        references = references[: config.training.valid_max_sentences]
    settings = DecodingSettings.from_config(
        config.decoding, beam_size=config.decoding.valid_beam_size, n_best=1
    )
    translator = Translator(model, config, data.src_vocab, data.tgt_vocab)
    start = time.perf_counter()
    hypotheses = [translation.text for translation in translator.translate(sources, settings)]
    scores = score(hypotheses, references, config.data.tgt_lang)
    model.train()
    dev_loss = total_loss.item() / max(total_tokens, 1)
    return {
        "dev_loss": round(dev_loss, 4),
        "dev_ppl": round(math.exp(min(dev_loss, 50.0)), 2),
        "dev_bleu": round(scores["bleu"], 2),
        "dev_chrf": round(scores["chrf"], 2),
        "decode_seconds": round(time.perf_counter() - start, 1),
        "example": hypotheses[0] if hypotheses else "",
    }


# --- the loop -------------------------------------------------------------------------------


class TrainingWindow:
    """What the steps since the last log step did: their loss (kept on the device, so that
    no step waits for the GPU), target tokens on all ranks, this rank's model FLOPs, and
    the wall-clock time (validation excluded)."""

    def __init__(self, device: torch.device, step: int) -> None:
        self.device = device
        self.reset(step)

    def reset(self, step: int) -> None:
        self.first_step = step + 1
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_tokens = 0  # this rank's: the loss above is summed over them
        self.tokens = 0  # all ranks'
        self.flops = 0.0
        self.restart_clock()

    def restart_clock(self) -> None:
        self.start, self.tokens, self.flops = time.perf_counter(), 0, 0.0

    def add(self, step: StepInput, loss_sum: Tensor, flops: float) -> None:
        self.loss_sum += loss_sum
        self.loss_tokens += sum(batch.ntokens for batch in step.batches)
        self.tokens += step.tokens
        self.flops += flops

    def loss(self) -> float:
        """Mean loss per target token; reading it waits for the GPU."""
        return self.loss_sum.item() / max(self.loss_tokens, 1)

    def rates(self) -> tuple[float, float]:
        """(target tokens/s on all ranks, this rank's model FLOP/s)."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        return self.tokens / seconds, self.flops / seconds


class Trainer:
    """Holds the objects of one run; :meth:`run` is the loop."""

    def __init__(self, config: Config, resume: bool = True) -> None:
        validate_config(config)  # a config built in code gets the checks a file gets
        self.config = config
        t = config.training
        self.ranks = Ranks.from_environment()
        self.rank, self.world_size = self.ranks.rank, self.ranks.world_size
        self.is_main = self.ranks.is_main
        self.run_dir = config.run_dir
        self.device = self._start_device()
        # Every rank builds the same model from the configured seed (DDP then checks that
        # they agree); dropout then gets each rank's own seed (below).
        seed_everything(t.seed)
        self._load_data()
        self._build_model()
        self.progress = Progress()
        if resume and (self.run_dir / "last.pt").exists():
            self._restore(self.run_dir / "last.pt")
        self.rank_seed = distributed.rank_seed(t.seed, self.rank, self.progress.step)
        if self.rank:
            seed_everything(self.rank_seed)
        self._wrap_for_training()
        self.workers = data_workers(t.data_workers, self.device)
        self.metrics_file = self.run_dir / "metrics.jsonl"
        self.tensorboard = self._open_tensorboard() if self.is_main and t.tensorboard else None

    def _start_device(self) -> torch.device:
        """Threads, determinism, this rank's device (and the process group under torchrun)."""
        t = self.config.training
        if t.threads:
            torch.set_num_threads(t.threads)
        if t.deterministic:
            # cuBLAS is deterministic only with this workspace setting, read when CUDA starts;
            # a few CUDA kernels (attention's backward) have no deterministic form: those
            # warn instead of stopping the run.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        return distributed.start(resolve_device(t.device, "training.device:"), self.ranks)

    def _load_data(self) -> None:
        """The prepared data and this rank's plan of optimiser steps."""
        t = self.config.training
        # Rank 0 prepares (or finds cached) data first so ranks never write the same files.
        if self.is_main:
            self.data = prepare_data(self.config.data)
        distributed.barrier(self.ranks)
        if not self.is_main:
            self.data = prepare_data(self.config.data)
        self.train_corpus = self.data.encoded("train")
        sampler = TokenBatchSampler(
            self.train_corpus.src_lengths,
            self.train_corpus.tgt_lengths,
            t.max_tokens,
            shuffle=True,
            seed=t.seed,
            mixture=self.train_corpus.mixture,  # data.train's weights (nmt/data/sampling.py)
        )
        self.plan = StepPlan(self.train_corpus, sampler, t.accumulate, self.rank, self.world_size)

    def _build_model(self) -> None:
        """The model on its device, its FLOP count, optimiser, schedule and precision."""
        t = self.config.training
        sizes = len(self.data.src_vocab), len(self.data.tgt_vocab)
        self.model = build_model(self.config.model, *sizes).to(self.device)
        self.flop_counter = FlopCounter.of(self.model)
        self.peak_flops = peak_flops(self.device, t.precision, t.peak_tflops)
        self.optimizer = build_optimizer(self.model, self.config, self.device)
        self.schedule = build_schedule(self.config)
        on_cuda = self.device.type == "cuda"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.precision)
        self.use_autocast = on_cuda and self.autocast_dtype is not None
        if t.precision != "fp32" and not on_cuda:
            self._log(
                f"training.precision={t.precision} applies on CUDA only: fp32 on {self.device}"
            )
        fp16 = self.use_autocast and t.precision == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)

    def _wrap_for_training(self) -> None:
        """``train_model``: the model as the steps call it (DDP under torchrun, compiled
        with ``training.compile``); ``model`` stays the plain module that is saved."""
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.train_model: nn.Module = self.model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # Buffers saved with the model (RFA's redrawn projections) are broadcast from rank 0
            # before each forward; constant tables (positions) need not be, every step.
            saved = set(self.model.state_dict())
            broadcast = any(name in saved for name, _ in self.model.named_buffers())
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids, broadcast_buffers=broadcast
            )
            self.train_model = self.ddp
        if self.config.training.compile:
            # dynamic: batches of token-budget batching come in many shapes.
            self.train_model = torch.compile(self.train_model, dynamic=True)

    # -- checkpoints --

    def checkpoint(self) -> Checkpoint:
        """The run as it is now: weights, vocabularies, config and what resuming needs."""
        p = self.progress
        return Checkpoint(
            config=self.config,
            model=self.model.state_dict(),
            src_vocab=self.data.src_vocab,
            tgt_vocab=self.data.tgt_vocab,
            step=p.step,
            epoch=p.epoch,
            metrics=p.history[-1] if p.history else {},
            training={
                "progress": p.__dict__.copy(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "random": random_states(),
            },
        )

    def save(self, best: bool = False) -> None:
        """``last.pt`` with everything resuming needs; ``best.pt`` and ``step-N.pt`` with the
        weights only (for translating and averaging: a third of the size with Adam)."""
        if not self.is_main:
            return
        checkpoint = self.checkpoint()
        save_checkpoint(self.run_dir / "last.pt", checkpoint)
        weights = dataclasses.replace(checkpoint, training=None)
        if best:
            save_checkpoint(self.run_dir / "best.pt", weights)
        keep = self.config.training.keep_checkpoints
        if keep:
            save_checkpoint(self.run_dir / f"step-{self.progress.step}.pt", weights)
            for old in step_checkpoints(self.run_dir)[:-keep]:
                old.unlink(missing_ok=True)

    def _restore(self, path: Path) -> None:
        checkpoint = load_checkpoint(path)  # onto the CPU: random states must be CPU tensors
        state = checkpoint.training
        if state is None or set(state) != set(TRAINING_STATE):
            raise CheckpointError(f"{path} holds no training state to resume from")
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        restore_scaler(self.scaler, state["scaler"])
        restore_random_states(state["random"])
        self.progress = Progress(**state["progress"])
        minutes = self.progress.seconds / 60
        self._log(
            f"resumed from {path} at step {self.progress.step} "
            f"(epoch {self.progress.epoch + 1}, {minutes:.1f} min trained)"
        )

    # -- helpers --

    def _log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message, file=sys.stderr)

    def _open_tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _record(self, entry: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if self.tensorboard is not None:
            for key, value in entry.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tensorboard.add_scalar(key, value, entry["step"])

    def _limit_reached(self) -> str | None:
        """The limit of the config that the run has reached, if any."""
        t, p = self.config.training, self.progress
        if t.max_steps and p.step >= t.max_steps:
            return f"max_steps={t.max_steps}"
        if t.max_epochs and p.epoch >= t.max_epochs:
            return f"max_epochs={t.max_epochs}"
        if t.max_minutes and p.seconds >= t.max_minutes * 60:
            return f"max_minutes={t.max_minutes:g}"
        if (
            t.early_stopping_patience
            and p.validations_without_improvement >= t.early_stopping_patience
        ):
            return f"early stopping (no better dev BLEU in {t.early_stopping_patience} validations)"
        return None

    def decide_stop(self, stop_flag: StopFlag) -> str | None:
        """Whether to stop now, and why: the one place that decides. A signal or a reached
        limit on any rank stops every rank (their clocks differ, so time limits may not
        agree by themselves)."""
        reason = self._limit_reached()
        if stop_flag.signal_name:
            reason = f"{stop_flag.signal_name} received"
        if distributed.any_rank(reason is not None, self.ranks):
            return reason or "another rank stopped"
        return None

    def _check_loss(self) -> float:
        """The mean loss of the steps since the last log step; stops the run, without
        saving, when it is not finite. (Read here rather than at every step: reading waits
        for the GPU.)"""
        loss = self._window.loss()
        if not math.isfinite(loss):
            first, last = self._window.first_step, self.progress.step
            steps = f"step {last}" if first >= last else f"steps {first}-{last}"
            raise TrainingError(
                f"loss became {loss} in {steps}; stopped without saving. The last good "
                f"checkpoint is {self.run_dir / 'last.pt'} (if any). Try a lower "
                "training.lr, more training.warmup_steps or training.clip_norm."
            )
        return loss

    # -- one optimiser step --

    def train_step(self, step: StepInput) -> Tensor:
        """Forward/backward over the step's batches, then one optimiser step; returns the
        summed loss of this rank's batches (on the device: nothing here waits for the GPU).

        The loss is divided by the target tokens of the whole step on all ranks (times the
        number of ranks, whose gradients DDP averages), so accumulation and data parallelism
        give the gradient of one big batch.
        """
        t = self.config.training
        losses = []
        for i, batch in enumerate(step.batches):
            batch = batch.to(self.device, non_blocking=True)
            # DDP must only all-reduce gradients on the last micro-batch of the step.
            last = i == len(step.batches) - 1
            sync = nullcontext() if self.ddp is None or last else self.ddp.no_sync()
            autocast = (
                torch.autocast(self.device.type, dtype=self.autocast_dtype)
                if self.use_autocast
                else nullcontext()
            )
            with sync, autocast:
                logits = self.train_model(batch.src, batch.src_lengths, batch.tgt_in)
                loss = label_smoothed_nll(logits, batch.tgt_out, t.label_smoothing, PAD_ID)
            self.scaler.scale(loss * self.world_size / step.tokens).backward()
            losses.append(loss.detach())
        self.progress.step += 1
        set_lr(self.optimizer, self.schedule.lr_at(self.progress.step))
        if t.clip_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return torch.stack(losses).sum()

    def validate_and_save(self) -> None:
        """Rank 0 validates; every rank records the result the same way (so all agree on
        early stopping, the schedule and the history); rank 0 saves."""
        self._check_loss()
        p = self.progress
        entry = None
        if self.is_main:
            metrics = validate(self.model, self.data, self.config, self.device)
            entry = {"step": p.step, "epoch": p.epoch + 1, "minutes": round(p.seconds / 60, 2)}
            entry.update(metrics)
        entry = distributed.from_main(entry, self.ranks)
        improved = entry["dev_bleu"] > p.best_bleu
        if improved:
            p.best_bleu, p.best_step, p.validations_without_improvement = (
                entry["dev_bleu"],
                p.step,
                0,
            )
        else:
            p.validations_without_improvement += 1
        self.schedule.observe(entry["dev_bleu"])
        p.history.append(entry)
        self._record({"event": "validation", **entry})
        mark = " *" if improved else ""
        self._log(
            f"step {p.step}: dev loss {entry['dev_loss']:.3f} ppl {entry['dev_ppl']:.1f} "
            f"BLEU {entry['dev_bleu']:.2f} chrF {entry['dev_chrf']:.2f}{mark}"
        )
        self.save(best=improved)

    def run(self) -> Progress:
        """Train until :meth:`decide_stop` says so; the final state is validated and saved."""
        p = self.progress
        self._announce()
        self._window = TrainingWindow(self.device, p.step)
        with StopFlag() as stop_flag:
            stop_reason = self.decide_stop(stop_flag)
            if stop_reason is not None:
                self._already_finished(stop_reason)
                self._close()
                return p
            self.model.train()
            self._clock_start = time.time() - p.seconds
            stop_reason = self._train(stop_flag)
            # A signal saves at once; otherwise the final state is validated (unless the last
            # step just was) and saved. Every rank has the same history, so all agree.
            interrupted = stop_flag.signal_name is not None
            if interrupted:
                self._check_loss()
                self.save()
            elif not p.history or p.history[-1]["step"] != p.step:
                self.validate_and_save()
        self._summary(stop_reason, interrupted)
        self._close()
        return p

    def _announce(self) -> None:
        t = self.config.training
        processes = "1 process"
        if self.world_size > 1:
            processes = f"{self.world_size} processes over {distributed.backend_name()}"
        precision = f"{t.precision} autocast" if self.use_autocast else "fp32"
        self._log(
            f"training {self.config.name}: {self.config.model.type} with "
            f"{self.model.num_parameters():,} parameters on {self.device} ({processes}, "
            f"{precision}{', compiled' if t.compile else ''}, {self.workers} data workers), "
            f"{len(self.train_corpus):,} training pairs"
        )

    def _close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def _train(self, stop_flag: StopFlag) -> str:
        """Train step after step, across epochs, until a stop is decided (its reason)."""
        p, t = self.progress, self.config.training
        start = (p.epoch, p.batch_in_epoch // t.accumulate)
        self.plan.num_steps(p.epoch)  # a plan without steps fails here, with its reason
        steps = step_loader(self.plan, start, self.workers, self.device.type == "cuda")
        bar = None
        try:
            for step in steps:
                if step.epoch != p.epoch:  # resumed at the very end of an epoch
                    p.epoch, p.batch_in_epoch = step.epoch, 0
                if bar is None:
                    bar = self._epoch_bar(step)
                self._train_one(step, bar)
                if step.last_in_epoch:
                    p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                    bar.close()
                    bar = None
                stop_reason = self.decide_stop(stop_flag)
                if stop_reason is not None:
                    return stop_reason
        finally:
            if bar is not None:
                bar.close()
        raise AssertionError("the step stream is endless")

    def _epoch_bar(self, step: StepInput) -> tqdm:
        return tqdm(
            total=step.steps_in_epoch,
            initial=step.index,
            desc=f"epoch {step.epoch + 1}",
            disable=not self.is_main,
            dynamic_ncols=True,
            leave=False,
        )

    def _train_one(self, step: StepInput, bar: tqdm) -> None:
        """One optimiser step, then its bookkeeping: progress, logging, validation."""
        t, p = self.config.training, self.progress
        loss_sum = self.train_step(step)
        self._window.add(step, loss_sum, self.flop_counter(step.lengths))
        p.batch_in_epoch += len(step.batches)
        p.seconds = time.time() - self._clock_start
        bar.update(1)
        if p.step % t.log_every == 0:
            self._log_training(bar)
        if p.step % t.valid_every == 0:
            self.validate_and_save()
            self._window.restart_clock()  # keep validation out of tokens/s

    def _log_training(self, bar: tqdm) -> None:
        p = self.progress
        loss = self._check_loss()
        tokens_per_second, flops_per_second = self._window.rates()
        lr = self.optimizer.param_groups[0]["lr"]
        entry: dict[str, Any] = {
            "step": p.step,
            "loss": round(loss, 4),
            "lr": lr,
            "tokens_per_s": round(tokens_per_second, 1),
        }
        postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}", "tok_s": f"{tokens_per_second:,.0f}"}
        if self.peak_flops:
            entry["mfu"] = round(flops_per_second / self.peak_flops, 4)
            postfix["mfu"] = f"{entry['mfu']:.1%}"
        bar.set_postfix(postfix)
        self._record({"event": "train", **entry})
        self._window.reset(p.step)

    def _already_finished(self, reason: str) -> None:
        """Say that a finished run has nothing left to do, and how to extend it."""
        p = self.progress
        limit = reason.split("=")[0] if "=" in reason else "training.early_stopping_patience"
        example = {
            "max_steps": f"training.max_steps={p.step * 2}",
            "max_epochs": f"training.max_epochs={p.epoch + 1}",
            "max_minutes": f"training.max_minutes={math.ceil(p.seconds / 60) * 2}",
        }.get(
            limit,
            f"training.early_stopping_patience={p.validations_without_improvement + 2}",
        )
        self._log(
            f"nothing to train: {self.run_dir} already reached {reason} at step {p.step} "
            f"({p.seconds / 60:.1f} min; limits count across resumes). To train on, raise the "
            f"limit, e.g. add {example} to the command; --restart starts over."
        )

    def _summary(self, stop_reason: str, interrupted: bool) -> None:
        p = self.progress
        gpu_memory = peak_gpu_memory_mb(self.device)
        self._record(
            {
                "event": "done",
                "step": p.step,
                "minutes": round(p.seconds / 60, 2),
                "stop_reason": stop_reason,
                "interrupted": interrupted,
                "best_step": p.best_step,
                "best_dev_bleu": p.best_bleu,
                "peak_memory_mb": round(peak_memory_mb()),
                "peak_gpu_memory_mb": None if gpu_memory is None else round(gpu_memory),
            }
        )
        resume = "; run the same command to resume" if interrupted else ""
        gpu = "" if gpu_memory is None else f", GPU {gpu_memory:,.0f} MB"
        self._log(
            f"done: {p.step} steps, {p.epoch + (p.batch_in_epoch > 0)} epochs, {p.seconds / 60:.1f} min "
            f"(stopped by {stop_reason}{resume}). Best dev BLEU {p.best_bleu:.2f} at step {p.best_step}; "
            f"checkpoints in {self.run_dir}/ (best.pt, last.pt); peak memory {peak_memory_mb():,.0f} MB{gpu}"
        )


def train(config: Config, resume: bool = True) -> Progress:
    """Train (or resume) the experiment described by ``config``; returns where it ended."""
    trainer = Trainer(config, resume=resume)
    try:
        progress = trainer.run()
        # Leave together: a rank tearing down its connections while another still uses
        # them can abort that one.
        distributed.barrier(trainer.ranks)
        return progress
    finally:
        distributed.stop()
