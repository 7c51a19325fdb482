"""The training loop: one class read top to bottom, for LoRA and full fine-tuning, SFT and DPO,
one process or many (in the manner of torchtune's recipe classes).

    Run(config)   set-up: data -> tokens (loss on answers only) -> model (+ LoRA) -> AdamW +
                  warm-up/decay -> resume from a checkpoint -> DPO's reference
    .train()      for each epoch, for each step of `batch_size` examples (or `batch_tokens`):
                      .step(): pack the examples end to end -> forward/backward per pass (loss
                      summed over answer tokens, divided by the step's answer tokens) -> clip ->
                      update
                      every `eval_every_steps`: loss on a small validation batch
                      mid-epoch checkpoints (a pause, every N steps or minutes)
                  .end_epoch(): full validation, checkpoint (atomic), results.csv, loss.png
    .finish()     RUN/final/ (adapter or model + tokenizer), loadable by plain transformers/PEFT
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from tunesmith.atomic import write_text
from tunesmith.config import ResolvedConfig, TrainConfig
from tunesmith.data.render import Tokenized
from tunesmith.data.steps import epoch_steps
from tunesmith.data.taskfile import read_task
from tunesmith.errors import UsageError
from tunesmith.hparams import DEFAULT_BETA
from tunesmith.modeling import load_tokenizer, resolve_model
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.training import allocator, memory, sharding
from tunesmith.training import distributed as D
from tunesmith.training.attention import kernel_for
from tunesmith.training.checkpoint import (
    prune_checkpoints,
    restore,
    resume_point,
    save_checkpoint,
    save_final,
    saved_batch_tokens,
)
from tunesmith.training.hooks import TrainHooks, TrainingPaused, TrainingStopped
from tunesmith.training.inputs import check_loss_fits_data, read_examples, tokenize_items
from tunesmith.training.objectives import objective_for
from tunesmith.training.optimizers import build_optimizer, lr_schedule
from tunesmith.training.preference import REFERENCE_FILE, PreferenceObjective, run_reference
from tunesmith.training.records import (
    MetricsLog,
    describe,
    latest_metrics,
    named,
    plot_loss,
    write_results_csv,
)
from tunesmith.training.tracking import with_trackers
from tunesmith.training.trainable import Numerics, trainable_model

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "results.csv", "loss.png", "checkpoints", "final",
             REFERENCE_FILE)
"""What a run folder holds: `train` writes (and replaces) these, nothing else."""


@dataclass
class TrainResult:
    run_dir: Path
    final_dir: Path
    config: ResolvedConfig
    steps: int
    trained_tokens: int
    """Real (non-padding) tokens processed over all epochs (OpenAI's `trained_tokens`)."""
    initial_valid_loss: float | None
    final_valid_loss: float | None
    best_epoch: int | None
    seconds: float
    """Wall time of this process's training loop (a resumed run counts only its own part)."""
    tokens_per_s: float
    model: torch.nn.Module = field(repr=False, default=None)  # type: ignore[assignment]
    """The trained model (PEFT-wrapped for LoRA), still in memory."""


def train(config: TrainConfig, hooks: TrainHooks | None = None) -> TrainResult:
    """Fine-tune `config.model` on `config.train_file` and write the run folder `config.out`.

    Raises:
        UnusableInputError: a data file cannot be read.
        InvalidDataError: a data file has errors (fix them with `tunesmith data check`).
        UsageError: a run folder of another run, or an --out folder of other files.
        ModelError: the model cannot be resolved or loaded.
        TrainingStopped: `hooks.should_stop()` returned True.
        TrainingPaused: `hooks.should_pause()` returned True (after a checkpoint).
    """
    return Run(config, hooks).train()


class Run:
    """One training run: `__init__` sets everything up, `train` runs the loop."""

    def __init__(self, config: TrainConfig, hooks: TrainHooks | None = None) -> None:
        hooks = hooks or TrainHooks()
        if config.report_to:
            hooks = with_trackers(hooks, config.report_to, Path(config.out))
        self.hooks = hooks
        self.run_dir = run = Path(config.out)
        # A run folder is new, empty or a run (config.yaml): never a folder of someone's files,
        # which final/ and checkpoints/ would replace.
        claim_dir(run, owned=("config.yaml",))
        check_not_input([run / name for name in RUN_FILES], [config.train_file, config.val_file])
        self.info = D.setup(config.device)
        if self.info.device.type == "cpu":  # a glibc heap setting for CPU tensors
            allocator.keep_freed_memory()  # steps reuse freed memory instead of faulting it in
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        start = resolve_model(config.model)
        if start.is_adapter and config.head != "lm":
            raise UsageError(f"--head {config.head} starts from a base model; {config.model} is "
                             "a LoRA adapter.")
        config, auto_tokens, measure = self._setup_data(config)
        self.cfg = config.resolve(len(self.train_items), self.lengths, auto_tokens)
        if isinstance(self.objective, PreferenceObjective):
            self.objective.beta = self.cfg.beta
        # before any process writes config.yaml (a resumed run's auto tokens are the saved ones)
        resume_from = resume_point(run, self.cfg)
        self._setup_model(config, start, measure)
        self._resume(resume_from)

    def _setup_data(self, config: TrainConfig) -> tuple[TrainConfig, int | None, bool]:
        """Examples -> tokens with the loss mask, and the objective they train. Returns the
        config with its head named, the --batch-tokens auto value where it is known, and
        whether it must be measured on the device."""
        self.tokenizer = tokenizer = load_tokenizer(config.model)
        train_examples = read_examples(config.train_file)
        check_loss_fits_data(config, train_examples)
        self.objective = objective = (
            PreferenceObjective(DEFAULT_BETA) if config.loss == "dpo" else
            objective_for(config.head, read_task(Path(config.train_file).parent), train_examples))
        if config.head == "task":  # --method lora-head / full-head: the task's head, by name
            config = dataclasses.replace(config, head=objective.head)
        self.train_items = tokenize_items(objective, tokenizer, train_examples, config.max_seq_len,
                                          "train", config.model, config.train_file)
        self.val_items = (tokenize_items(objective, tokenizer, read_examples(config.val_file),
                                         config.max_seq_len, "validation", config.model,
                                         config.val_file) if config.val_file else [])
        self.lengths = [len(x.input_ids) for x in self.train_items]  # steps are planned by them
        # --batch-tokens auto: a resumed run keeps its number; a CUDA run measures it once the
        # model is built (_setup_model); on CPU it is --micro-batch-tokens
        saved_tokens = saved_batch_tokens(self.run_dir) if config.resume else None
        auto_tokens = None
        if config.batch_tokens == "auto":
            auto_tokens = saved_tokens or min(config.micro_batch_tokens,
                                              memory.epoch_cap(self.lengths))
        measure = (config.batch_tokens == "auto" and not saved_tokens
                   and self.info.device.type == "cuda")
        return config, auto_tokens, measure

    def _setup_model(self, config: TrainConfig, start, measure_tokens: bool) -> None:
        """The model (+ LoRA or a head), its loss (wrapped for DDP or sharded for FSDP), AdamW
        and the learning-rate schedule."""
        cfg, info = self.cfg, self.info
        numerics = Numerics.of(cfg.precision, info.device)
        self.fsdp = fsdp = cfg.distributed == "fsdp" and info.world > 1
        if fsdp and (cfg.tune or cfg.quantize != "none" or cfg.optimizer != "adamw"):
            raise UsageError("--distributed fsdp trains with AdamW on unquantized weights (not "
                             "--tune, --quantize or --optimizer adamw-8bit yet); use "
                             "--distributed ddp for those.")
        self.model = model = trainable_model(cfg, start, self.objective, info.device, numerics,
                                             fsdp=fsdp)
        loss_fn: torch.nn.Module = self.objective.loss(model)
        self.stat_names: tuple[str, ...] = loss_fn.stats  # what it returns after (sum, count)
        self.autocast = numerics.autocast(info.device)
        self.pad_id = (self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                       else 0)
        # A step's common prompt prefix runs once per row where the kernel supports it
        # (data/packing.py: the same loss and gradients, fewer tokens through the model).
        self.share_prefix = cfg.pack and kernel_for(info.device) == "segments"
        if measure_tokens:
            params = [p for p in model.parameters() if p.requires_grad]
            tokens = memory.measure_batch_tokens(loss_fn, self.objective, self.train_items,
                                                 self.lengths, params, cfg, info.device,
                                                 self.autocast, self.pad_id)
            tokens = -D.all_reduce_max(-tokens, info)  # what fits on every process
            self.cfg = cfg = config.resolve(len(self.train_items), self.lengths, tokens)
            log.info("--batch-tokens auto: %d tokens fit one pass on %s", tokens, info.device)
        log_resolved(cfg)
        self.hooks.on_start(dataclasses.asdict(cfg))
        self.eval_fn = loss_fn  # evaluation needs no gradient sync: it bypasses the DDP wrapper
        if fsdp:
            loss_fn = self.eval_fn = sharding.shard(loss_fn, model, info.device, info.world)
        elif info.world > 1:
            # No buffer broadcast: forward passes then hold no collective, so processes may run
            # different numbers of them (uneven shards); gradients still sync once per step.
            loss_fn = DistributedDataParallel(loss_fn, broadcast_buffers=False)
        self.loss_fn = loss_fn
        self.params = [p for p in model.parameters() if p.requires_grad]  # FSDP replaced them
        self.optimizer = build_optimizer(cfg.optimizer, self.params, lr=cfg.lr,
                                         weight_decay=cfg.weight_decay, device=info.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_schedule(cfg))
        log.info("device %s x%d, %s, %s trainable parameters of %s", info.device, info.world,
                 numerics.describe(), f"{sum(p.numel() for p in self.params):,}",
                 f"{sum(p.numel() for p in model.parameters()):,}")

    def _resume(self, resume_from: Path | None) -> None:
        """Where the run starts (a checkpoint's state, or the beginning), config.yaml and the
        metrics log; DPO's reference pass; the validation loss before training."""
        cfg, info, run = self.cfg, self.info, self.run_dir
        progress = restore(resume_from, self.model, self.optimizer, self.scheduler, cfg.method,
                           sharded=self.fsdp)
        self.start_epoch, self.step_count, self.best = progress.epoch, progress.step, progress.best
        self.skip_steps = progress.steps_in_epoch  # steps of the first epoch already done
        self.initial_valid_loss = progress.initial_valid_loss
        self.trained_tokens = 0
        if info.main:
            run.mkdir(parents=True, exist_ok=True)
            write_text(run / "config.yaml", cfg.to_yaml())
        self.metrics = (MetricsLog(run / "metrics.jsonl",
                                   keep_until_step=self.step_count if resume_from else None)
                        if info.main else None)
        # DPO's reference: the starting model's log-probabilities, computed once
        if isinstance(self.objective, PreferenceObjective):
            run_reference(run, self.eval_fn, self.train_items, self.val_items,
                          resuming=resume_from is not None, pack=cfg.pack,
                          max_tokens=cfg.micro_batch_tokens, pad_id=self.pad_id,
                          autocast=self.autocast, info=info, sharded=self.fsdp)
        if self.val_items and resume_from is None:
            measured = self.evaluate(self.val_items, "full_valid")
            self.initial_valid_loss = measured["full_valid_loss"]
            self.record({"step": 0, "epoch": 0, **measured})
            log.info("before training: %s", describe(measured))

    # ---- the loop ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        cfg, info, hooks = self.cfg, self.info, self.hooks
        eval_batch = self.val_items[: cfg.eval_examples]
        bar = tqdm(total=cfg.total_steps, initial=self.step_count, unit="step",
                   disable=cfg.quiet or not info.main, dynamic_ncols=True)
        started = self.last_save = time.perf_counter()
        self.loss_fn.train()
        for epoch in range(self.start_epoch, cfg.epochs):
            steps = epoch_steps(self.lengths, cfg.seed, epoch, cfg.batch_size, cfg.batch_tokens)
            for k_step, chosen in enumerate(steps):
                if epoch == self.start_epoch and k_step < self.skip_steps:
                    continue  # done before the mid-epoch checkpoint this run resumed from
                entry = self.step(chosen, epoch)
                if eval_batch and (self.step_count % cfg.eval_every_steps == 0
                                   or self.step_count == cfg.total_steps):
                    entry.update(self.evaluate(eval_batch, "valid"))
                self.record(entry)
                bar.set_postfix(epoch=epoch + 1, loss=f"{entry['train_loss']:.4f}",
                                tok_s=f"{entry['tokens_per_s']:.0f}", refresh=False)
                bar.update(1)
                if hooks.should_stop():
                    bar.close()
                    raise TrainingStopped(f"stopped at step {self.step_count}")
                done_in_epoch = k_step + 1
                if done_in_epoch == len(steps):
                    continue  # the epoch-end checkpoint follows
                if hooks.should_pause():
                    self.save_mid_epoch(epoch, done_in_epoch)
                    D.barrier(info)
                    bar.close()
                    raise TrainingPaused(f"paused at step {self.step_count}")
                if self.checkpoint_due():
                    self.save_mid_epoch(epoch, done_in_epoch)
                    D.barrier(info)
                    self.last_save = time.perf_counter()
            self.end_epoch(epoch)
            if hooks.end_training():
                log.info("ending after epoch %d (asked by the caller)", epoch + 1)
                break
        bar.close()
        return self.finish(time.perf_counter() - started)

    def step(self, chosen: list[int], epoch: int) -> dict:
        """One optimizer step over the examples `chosen` of `epoch` (0-based): every process
        takes its share, runs forward and backward per pass, and the step updates once. Returns
        its metrics record."""
        cfg, info, loss_fn = self.cfg, self.info, self.loss_fn
        t0 = time.perf_counter()
        step_items = [self.train_items[i] for i in chosen]
        shard = step_items[info.rank::info.world]
        # A process left without examples (a last step smaller than the process count) still
        # runs one pass, with its loss scaled to 0, because every process must join the step's
        # gradient all-reduce.
        idle = not shard
        batches = self.objective.batches(shard or step_items[:1], cfg.pack,
                                         cfg.micro_batch_tokens, self.pad_id, self.share_prefix)
        counted_passes = len(batches)
        if self.fsdp:  # the same number of passes everywhere; the extra ones count nothing
            extra = D.all_reduce_max(len(batches), info) - len(batches)
            batches = batches + [batches[0]] * extra
        # The step's loss is the mean over all its answer tokens, across passes and processes;
        # DDP averages gradients over processes, hence the factor `world`.
        step_tokens = D.all_reduce_sum(
            [0 if idle else sum(b.n_targets for b in batches[:counted_passes])], info)[0]
        sums = [0.0] * (2 + len(self.stat_names))
        for k, batch in enumerate(batches):
            last = k == len(batches) - 1
            if self.fsdp:
                loss_fn.set_requires_gradient_sync(last)
                sync = contextlib.nullcontext()
            else:
                sync = contextlib.nullcontext() if last or info.world == 1 else loss_fn.no_sync()
            counted = not idle and k < counted_passes
            with sync:
                with self.autocast():
                    out = loss_fn(batch.to(info.device))
                scale = info.world / max(step_tokens, 1) if counted else 0.0
                (out[0] * scale).backward()
            if counted:
                sums = [a + b.item() for a, b in zip(sums, out)]
        grad_norm = (_item(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
                     if cfg.max_grad_norm > 0 else _grad_norm(self.params))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        trained = named(D.all_reduce_sum(sums, info), "train", self.stat_names)
        tokens = D.all_reduce_sum([0.0 if idle else float(sum(b.n_tokens for b in batches))],
                                  info)[0]
        self.trained_tokens += int(tokens)
        seconds = time.perf_counter() - t0
        return {"step": self.step_count, "epoch": epoch + 1, **trained,
                "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": grad_norm, "tokens": int(tokens), "tokens_per_s": tokens / seconds}

    # ---- what happens around the steps ---------------------------------------------------------

    def evaluate(self, items: list[Tokenized], prefix: str) -> dict[str, float]:
        """Mean loss and the loss's statistics (token accuracy; preference accuracy...) over
        the items' targets, sharded over processes, named `{prefix}_loss`, ..."""
        info, eval_fn = self.info, self.eval_fn
        eval_fn.eval()
        sums = [0.0] * (2 + len(self.stat_names))
        mine = items[info.rank::info.world]
        batches = self.objective.batches(mine or items[:1], self.cfg.pack,
                                         self.cfg.micro_batch_tokens, self.pad_id,
                                         self.share_prefix)
        # FSDP: every process runs as many passes (each all-gathers); extra ones count nothing
        passes = D.all_reduce_max(len(batches), info) if self.fsdp else len(batches)
        with torch.no_grad(), self.autocast():
            for k in range(passes):
                out = eval_fn(batches[min(k, len(batches) - 1)].to(info.device))
                if mine and k < len(batches):
                    sums = [a + b.item() for a, b in zip(sums, out)]
        eval_fn.train()
        return named(D.all_reduce_sum(sums, info), prefix, self.stat_names)

    def record(self, entry: dict) -> None:
        if self.metrics is not None:
            self.metrics.write(entry)
            self.hooks.on_record(entry)

    def checkpoint_due(self) -> bool:
        """A mid-epoch checkpoint every --save-every-steps steps or --save-every-minutes."""
        cfg = self.cfg
        due = bool((cfg.save_every_steps and self.step_count % cfg.save_every_steps == 0) or (
            cfg.save_every_minutes and
            time.perf_counter() - self.last_save >= 60 * cfg.save_every_minutes))
        if cfg.save_every_minutes and self.info.world > 1:  # clocks differ: rank 0's decides
            due = D.all_reduce_max(int(due and self.info.main), self.info) > 0
        return due

    def gather(self) -> tuple[dict, dict] | None:
        """FSDP: the full states, gathered (every process takes part); else None."""
        return (sharding.full_state(self.model, self.optimizer, self.cfg.method == "lora")
                if self.fsdp else None)

    def _best_state(self) -> dict:
        path = self.best["path"]
        return {**self.best, "path": str(path) if path else None}

    def save_mid_epoch(self, epoch: int, steps_in_epoch: int) -> Path | None:
        """A checkpoint inside epoch `epoch` (0-based) after `steps_in_epoch` of its steps."""
        gathered = self.gather()
        if not self.info.main:
            return None
        state = {"step": self.step_count, "steps_in_epoch": steps_in_epoch,
                 "initial_valid_loss": self.initial_valid_loss, "best": self._best_state()}
        path = save_checkpoint(self.run_dir, epoch, self.model, self.optimizer, self.scheduler,
                               state, step=self.step_count, gathered=gathered)
        prune_checkpoints(self.run_dir, {path} | ({self.best["path"]} if self.best["path"]
                                                  else set()))
        write_results_csv(self.run_dir / "results.csv", self.metrics.records)
        log.info("checkpoint at step %d (epoch %d, %d steps into it)", self.step_count,
                 epoch + 1, steps_in_epoch)
        return path

    def end_epoch(self, epoch: int) -> None:
        """Epoch `epoch` (0-based) is done: full validation, checkpoint, records, plots."""
        cfg, info, run = self.cfg, self.info, self.run_dir
        state: dict = {"step": self.step_count, "steps_in_epoch": 0,
                       "initial_valid_loss": self.initial_valid_loss}
        if self.val_items:
            measured = self.evaluate(self.val_items, "full_valid")
            state["full_valid_loss"] = measured["full_valid_loss"]
            self.record({"step": self.step_count, "epoch": epoch + 1, **measured})
            log.info("epoch %d: %s", epoch + 1, describe(measured))
        gathered = self.gather()
        if info.main:
            path = run / "checkpoints" / f"epoch-{epoch + 1:03d}"
            if self.val_items and state["full_valid_loss"] < self.best["loss"]:
                self.best = {"loss": state["full_valid_loss"], "epoch": epoch + 1, "path": path}
            state["best"] = self._best_state()
            save_checkpoint(run, epoch + 1, self.model, self.optimizer, self.scheduler, state,
                            gathered=gathered)
            self.last_save = time.perf_counter()
            records = self.metrics.records
            write_results_csv(run / "results.csv", records)
            plot_loss(run / "loss.png", records, title=f"{cfg.method} · {cfg.model}")
            self.hooks.on_checkpoint(epoch + 1, self.step_count, path, latest_metrics(records))
            prune_checkpoints(run, {path} | ({self.best["path"]} if self.best["path"] else set()))
            if not self.fsdp:
                self.model.eval()
                self.hooks.on_epoch_end(epoch + 1, self.model, self.tokenizer, self.autocast)
                self.model.train()
        D.barrier(info)

    def finish(self, seconds: float) -> TrainResult:
        """RUN/final/ from the current weights; the run's figures."""
        info = self.info
        if info.device.type == "cpu":
            allocator.release_memory()
        final = self.run_dir / "final"
        gathered = self.gather()
        if info.main:
            save_final(final, self.model, self.tokenizer, self.cfg, self.objective.meta(),
                       gathered[0] if gathered else None)
        D.barrier(info)
        D.cleanup()
        final_valid = next((r["full_valid_loss"] for r in reversed(self.metrics.records)
                            if "full_valid_loss" in r), None) if self.metrics else None
        self.hooks.on_finish()
        return TrainResult(self.run_dir, final, self.cfg, self.step_count, self.trained_tokens,
                           self.initial_valid_loss, final_valid, self.best["epoch"], seconds,
                           self.trained_tokens / seconds if seconds else 0.0, self.model)


def log_resolved(cfg: ResolvedConfig) -> None:
    """The values "auto" resolved to, as the run starts."""
    auto = set(cfg.auto)

    def tag(k: str) -> str:
        return " (auto)" if k in auto else ""

    batch = (f"batches of {cfg.batch_tokens:,} tokens (~{cfg.batch_size} examples)"
             if cfg.batch_tokens else f"batch {cfg.batch_size} examples{tag('batch_size')}")
    log.info("%d training examples -> epochs %d%s, %s, lr %.2g%s", cfg.n_train, cfg.epochs,
             tag("epochs"), batch, cfg.lr, tag("lr"))
    log.info("%d steps (%d per epoch), %d warm-up, %s decay, eval every %d steps, %s",
             cfg.total_steps, cfg.steps_per_epoch, cfg.warmup_steps, cfg.schedule,
             cfg.eval_every_steps, "packed, no padding" if cfg.pack else "padded rows")


def _item(value: torch.Tensor) -> float:
    """A scalar tensor's value; a sharded one (FSDP's DTensor) is gathered first."""
    full = getattr(value, "full_tensor", None)
    return (full() if callable(full) else value).item()


def _grad_norm(params: list[torch.Tensor]) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0
