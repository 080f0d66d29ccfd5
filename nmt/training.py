"""The training loop, in one place (the command is ``nmt/commands/train.py``).

Reading order: :func:`train` sets everything up, restores a stopped run if there is one,
then loops over epochs of token-budget batches; every ``valid_every`` steps it validates
(dev loss, perplexity, BLEU/chrF) and writes checkpoints. :meth:`Trainer.decide_stop` is the
one place that decides to stop and why: ``max_steps``, ``max_epochs``, ``max_minutes`` (all
counted across resumes), early stopping, or SIGINT/SIGTERM (after saving).

Resuming restores the model, optimiser, schedule, gradient scaler, random states, step and
position in the data order, so a resumed run continues exactly where the stopped one was.
Under ``torchrun`` every rank trains on its share of the batches (DistributedDataParallel);
only rank 0 writes files and logs.
"""

from __future__ import annotations

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
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

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
from nmt.data.prepare import PreparedData, prepare_data
from nmt.data.readers import read_lines
from nmt.data.vocab import PAD_ID
from nmt.devices import resolve_device
from nmt.errors import CheckpointError, NmtError
from nmt.evaluation import score
from nmt.models import build_model
from nmt.schedules import LearningRateSchedule, label_smoothed_nll, set_lr
from nmt.translator import Translator


class TrainingError(NmtError):
    """Training cannot go on (for example the loss became NaN)."""


@dataclass
class Progress:
    """Everything about where a run is, saved in every checkpoint."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already consumed (this rank's share)
    seconds: float = 0.0  # training wall-clock time so far, across resumes
    best_bleu: float = -1.0
    best_step: int = 0
    validations_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation


# --- set-up -----------------------------------------------------------------------------


def distributed_context() -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world_size


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def random_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    random.setstate(_as_python_state(states["python"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_python_state(state: Any) -> tuple:
    # torch.save keeps tuples, but be lenient with lists from other writers.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    t = config.training
    optimizer_class = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), eps=t.eps, weight_decay=t.weight_decay
    )


def build_schedule(config: Config) -> LearningRateSchedule:
    t = config.training
    return LearningRateSchedule(
        t.schedule, t.lr, t.warmup_steps, t.plateau_factor, t.plateau_patience, t.min_lr
    )


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
    total_loss, total_tokens = 0.0, 0
    for indices in sampler.batches(0):
        batch = collate(dev, indices).to(device)
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        total_loss += label_smoothed_nll(logits, batch.tgt_out, 0.0, PAD_ID).item()
        total_tokens += batch.ntokens
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
    dev_loss = total_loss / max(total_tokens, 1)
    return {
        "dev_loss": round(dev_loss, 4),
        "dev_ppl": round(math.exp(min(dev_loss, 50.0)), 2),
        "dev_bleu": round(scores["bleu"], 2),
        "dev_chrf": round(scores["chrf"], 2),
        "decode_seconds": round(time.perf_counter() - start, 1),
        "example": hypotheses[0] if hypotheses else "",
    }


# --- the loop -------------------------------------------------------------------------------


class _Throughput:
    """Target tokens per second since the last reset (wall clock)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tokens, self.start = 0, time.time()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate_and_reset(self) -> float:
        rate = self.tokens / max(time.time() - self.start, 1e-9)
        self.reset()
        return rate


class Trainer:
    """Holds the objects of one run; :meth:`run` is the loop."""

    def __init__(self, config: Config, resume: bool = True) -> None:
        validate_config(config)  # a config built in code gets the checks a file gets
        self.config = config
        t = config.training
        self.rank, self.world_size = distributed_context()
        self.is_main = self.rank == 0
        self.run_dir = config.run_dir
        if t.threads:
            torch.set_num_threads(t.threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = resolve_device(t.device, "training.device:")
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        seed_everything(t.seed)

        # Rank 0 prepares (or finds cached) data first so ranks never write the same files.
        if self.is_main:
            self.data = prepare_data(config.data)
        self._barrier()
        if not self.is_main:
            self.data = prepare_data(config.data)
        self.train_corpus = self.data.encoded("train")
        self.sampler = TokenBatchSampler(
            self.train_corpus.src_lengths,
            self.train_corpus.tgt_lengths,
            t.max_tokens,
            shuffle=True,
            seed=t.seed,
            mixture=self.train_corpus.mixture,  # data.train's weights (nmt/data/sampling.py)
        )

        self.model = build_model(
            config.model, len(self.data.src_vocab), len(self.data.tgt_vocab)
        ).to(self.device)
        self.optimizer = build_optimizer(self.model, config)
        self.schedule = build_schedule(config)
        use_cuda_amp = self.device.type == "cuda" and t.precision != "fp32"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.precision)
        self.use_autocast = use_cuda_amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_cuda_amp and t.precision == "fp16")
        self.progress = Progress()
        if resume and (self.run_dir / "last.pt").exists():
            self._restore(self.run_dir / "last.pt")
        self.train_model: nn.Module = self.model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids
            )
        self.metrics_file = self.run_dir / "metrics.jsonl"
        self.tensorboard = self._open_tensorboard() if self.is_main and t.tensorboard else None

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
        if not self.is_main:
            return
        checkpoint = self.checkpoint()
        save_checkpoint(self.run_dir / "last.pt", checkpoint)
        if best:
            save_checkpoint(self.run_dir / "best.pt", checkpoint)
        keep = self.config.training.keep_checkpoints
        if keep:
            save_checkpoint(self.run_dir / f"step-{self.progress.step}.pt", checkpoint)
            for old in step_checkpoints(self.run_dir)[:-keep]:
                old.unlink(missing_ok=True)

    def _restore(self, path: Path) -> None:
        checkpoint = load_checkpoint(path)
        state = checkpoint.training
        if state is None or set(state) != set(TRAINING_STATE):
            raise CheckpointError(f"{path} holds no training state to resume from")
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        restore_random_states(state["random"])
        self.progress = Progress(**state["progress"])
        minutes = self.progress.seconds / 60
        self._log(
            f"resumed from {path} at step {self.progress.step} "
            f"(epoch {self.progress.epoch + 1}, {minutes:.1f} min trained)"
        )

    # -- helpers --

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

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
        if self.world_size == 1:
            return reason
        flag = torch.tensor([0.0 if reason is None else 1.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return (reason or "another rank stopped") if flag.item() else None

    # -- one optimiser step --

    def train_step(self, group: list[list[int]]) -> tuple[float, int]:
        """Forward/backward over ``accumulate`` batches, then one optimiser step.

        The loss is normalised by the target tokens of the whole group, so accumulation
        gives the same gradient as one big batch.
        """
        t = self.config.training
        batches = [collate(self.train_corpus, indices) for indices in group]
        group_tokens = sum(b.ntokens for b in batches)
        total_loss = 0.0
        for i, batch in enumerate(batches):
            batch = batch.to(self.device)
            # DDP must only all-reduce gradients on the last micro-batch of the group.
            sync = i == len(batches) - 1 or self.world_size == 1
            sync_context = nullcontext() if sync else self.train_model.no_sync()
            autocast = (
                torch.autocast(self.device.type, dtype=self.autocast_dtype)
                if self.use_autocast
                else nullcontext()
            )
            with sync_context, autocast:
                logits = self.train_model(batch.src, batch.src_lengths, batch.tgt_in)
                loss = label_smoothed_nll(logits, batch.tgt_out, t.label_smoothing, PAD_ID)
            self.scaler.scale(loss / group_tokens).backward()
            total_loss += loss.item()
        if not math.isfinite(total_loss):
            self.optimizer.zero_grad(set_to_none=True)
            return total_loss, group_tokens
        self.progress.step += 1
        set_lr(self.optimizer, self.schedule.lr_at(self.progress.step))
        if t.clip_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total_loss / group_tokens, group_tokens

    def validate_and_save(self) -> dict[str, Any]:
        p = self.progress
        metrics: dict[str, Any] = {}
        if self.is_main:
            metrics = validate(self.model, self.data, self.config, self.device)
            improved = metrics["dev_bleu"] > p.best_bleu
            if improved:
                p.best_bleu, p.best_step, p.validations_without_improvement = (
                    metrics["dev_bleu"],
                    p.step,
                    0,
                )
            else:
                p.validations_without_improvement += 1
            self.schedule.observe(metrics["dev_bleu"])
            entry = {
                "step": p.step,
                "epoch": p.epoch + 1,
                "minutes": round(p.seconds / 60, 2),
                **metrics,
            }
            p.history.append(entry)
            self._record({"event": "validation", **entry})
            mark = " *" if improved else ""
            self._log(
                f"step {p.step}: dev loss {metrics['dev_loss']:.3f} ppl {metrics['dev_ppl']:.1f} "
                f"BLEU {metrics['dev_bleu']:.2f} chrF {metrics['dev_chrf']:.2f}{mark}"
            )
            self.save(best=improved)
        self._sync_progress()
        return metrics

    def _sync_progress(self) -> None:
        """Rank 0 decides early stopping and plateau decay; the other ranks follow."""
        if self.world_size == 1:
            return
        p = self.progress
        state = [p.best_bleu, p.best_step, p.validations_without_improvement, self.schedule.scale]
        holder = [state]
        dist.broadcast_object_list(holder, src=0)
        p.best_bleu, p.best_step, p.validations_without_improvement, self.schedule.scale = holder[0]

    def run(self) -> Progress:
        """Train until :meth:`decide_stop` says so; the final state is validated and saved."""
        p = self.progress
        self._log(
            f"training {self.config.name}: {self.config.model.type} with {self.model.num_parameters():,} "
            f"parameters on {self.device} ({self.world_size} process{'es' if self.world_size > 1 else ''}), "
            f"{len(self.train_corpus):,} training pairs"
        )
        with StopFlag() as stop_flag:
            stop_reason = self.decide_stop(stop_flag)
            if stop_reason is not None:
                self._already_finished(stop_reason)
                self._close()
                return p
            self.model.train()
            self._clock_start = time.time() - p.seconds
            while stop_reason is None:
                stop_reason = self._train_epoch(stop_flag)
            # A signal saves at once; otherwise the final state is validated (unless the last
            # step just was) and saved.
            interrupted = stop_flag.signal_name is not None
            if interrupted:
                self.save()
            elif not p.history or p.history[-1]["step"] != p.step:
                self.validate_and_save()
        self._summary(stop_reason, interrupted)
        self._close()
        return p

    def _close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def _epoch_groups(self) -> list[list[list[int]]]:
        """This rank's optimiser steps of the current epoch, each ``accumulate`` batches."""
        t, p = self.config.training, self.progress
        group_size = t.accumulate * self.world_size
        all_batches = self.sampler.batches(p.epoch)
        # Equal work on every rank: drop the tail that does not fill a whole group.
        usable = len(all_batches) - len(all_batches) % group_size
        my_batches = all_batches[self.rank : usable : self.world_size]
        groups = [my_batches[i : i + t.accumulate] for i in range(0, len(my_batches), t.accumulate)]
        if not groups:
            raise TrainingError(
                f"an epoch gives no batches: {len(all_batches)} batches for {self.world_size} "
                f"process(es) x accumulate={t.accumulate}; use more data or a smaller training.max_tokens"
            )
        return groups

    def _train_epoch(self, stop_flag: StopFlag) -> str | None:
        """Train to the end of the current epoch or until a stop is decided (its reason)."""
        t, p = self.config.training, self.progress
        groups = self._epoch_groups()
        first_group = p.batch_in_epoch // t.accumulate
        bar = tqdm(
            total=len(groups),
            initial=first_group,
            desc=f"epoch {p.epoch + 1}",
            disable=not self.is_main,
            dynamic_ncols=True,
            leave=False,
        )
        self._throughput = _Throughput()
        try:
            for group in groups[first_group:]:
                self._train_group(group, bar)
                stop_reason = self.decide_stop(stop_flag)
                if stop_reason is not None:
                    return stop_reason
        finally:
            bar.close()
        p.epoch += 1
        p.batch_in_epoch = 0
        return self.decide_stop(stop_flag)

    def _train_group(self, group: list[list[int]], bar: tqdm) -> None:
        """One optimiser step, then its bookkeeping: progress, logging, validation."""
        t, p = self.config.training, self.progress
        loss, tokens = self.train_step(group)
        if not math.isfinite(loss):
            raise TrainingError(
                f"loss became {loss} at step {p.step + 1}; stopped without saving. The last "
                f"good checkpoint is {self.run_dir / 'last.pt'} (if any). Try a lower "
                "training.lr, more training.warmup_steps or training.clip_norm."
            )
        p.batch_in_epoch += len(group)
        p.seconds = time.time() - self._clock_start
        self._throughput.add(tokens * self.world_size)
        bar.update(1)
        if p.step % t.log_every == 0:
            rate = self._throughput.rate_and_reset()
            lr = self.optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
            entry = {
                "step": p.step,
                "loss": round(loss, 4),
                "lr": lr,
                "tokens_per_s": round(rate, 1),
            }
            self._record({"event": "train", **entry})
        if p.step % t.valid_every == 0:
            self.validate_and_save()
            self._throughput.reset()  # keep validation out of tokens/s

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
            }
        )
        resume = "; run the same command to resume" if interrupted else ""
        self._log(
            f"done: {p.step} steps, {p.epoch + (p.batch_in_epoch > 0)} epochs, {p.seconds / 60:.1f} min "
            f"(stopped by {stop_reason}{resume}). Best dev BLEU {p.best_bleu:.2f} at step {p.best_step}; "
            f"checkpoints in {self.run_dir}/ (best.pt, last.pt); peak memory {peak_memory_mb():,.0f} MB"
        )


def train(config: Config, resume: bool = True) -> Progress:
    """Train (or resume) the experiment described by ``config``; returns where it ended."""
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.run()
    finally:
        if trainer.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
