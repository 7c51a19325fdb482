"""The training loop: one function, read top to bottom, for LoRA and full fine-tuning.

    set-up   data -> tokens (loss on answers only) -> model (+ LoRA) -> AdamW + warm-up/decay
    loop     for each epoch, for each step of `batch_size` examples:
                 pack the examples end to end -> forward/backward per pass (loss summed
                 over answer tokens, divided by the step's answer tokens) -> clip -> step
                 every `eval_every_steps`: loss on a small validation batch
             at each epoch end: full validation, checkpoint (atomic), results.csv, loss.png
    finish   RUN/final/ (adapter or model + tokenizer), loadable by plain transformers/PEFT
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from tunesmith.atomic import write_text
from tunesmith.config import ResolvedConfig, TrainConfig
from tunesmith.data.examples import Example
from tunesmith.data.formats import read_dataset
from tunesmith.data.preference import PreferenceExample
from tunesmith.data.render import Tokenized, check_tools
from tunesmith.data.taskfile import read_task
from tunesmith.data.tokencache import tokenize_many
from tunesmith.errors import InvalidDataError, UsageError
from tunesmith.hparams import DEFAULT_BETA
from tunesmith.modeling import (
    load_tokenizer,
    resolve_model,
)
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.training import allocator, memory, sharding
from tunesmith.training import distributed as D
from tunesmith.training.checkpoint import (
    prune_checkpoints,
    restore,
    resume_point,
    save_checkpoint,
    save_final,
    saved_batch_tokens,
)
from tunesmith.training.hooks import TrainHooks, TrainingPaused, TrainingStopped
from tunesmith.training.objectives import Objective, objective_for
from tunesmith.training.optimizers import build_optimizer
from tunesmith.training.preference import REFERENCE_FILE, PreferenceObjective, run_reference
from tunesmith.training.records import MetricsLog, plot_loss, write_results_csv
from tunesmith.training.steps import epoch_steps
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
    """
    hooks = hooks or TrainHooks()
    if config.report_to:
        from tunesmith.training.tracking import with_trackers
        hooks = with_trackers(hooks, config.report_to, Path(config.out))
    run = Path(config.out)
    # A run folder is new, empty or a run (config.yaml): never a folder of someone's files,
    # which final/ and checkpoints/ would replace.
    claim_dir(run, owned=("config.yaml",))
    check_not_input([run / name for name in RUN_FILES], [config.train_file, config.val_file])
    info = D.setup(config.device)
    if info.device.type == "cpu":  # a glibc heap setting for CPU tensors; CUDA has its own
        allocator.keep_freed_memory()  # steps reuse freed memory instead of faulting it in again
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    # ---- data: examples -> tokens with the loss mask --------------------------------------
    start = resolve_model(config.model)
    if start.is_adapter and config.head != "lm":
        raise UsageError(f"--head {config.head} starts from a base model; {config.model} is a "
                         "LoRA adapter.")
    tokenizer = load_tokenizer(config.model)
    train_examples = _examples(config.train_file)
    _check_loss_fits_data(config, train_examples)
    objective = (PreferenceObjective(DEFAULT_BETA) if config.loss == "dpo" else
                 objective_for(config.head, read_task(Path(config.train_file).parent),
                               train_examples))
    train_items = _tokenize(objective, tokenizer, train_examples, config.max_seq_len, "train",
                            config.model, config.train_file)
    val_items = (_tokenize(objective, tokenizer, _examples(config.val_file), config.max_seq_len,
                           "validation", config.model, config.val_file)
                 if config.val_file else [])
    lengths = [len(x.input_ids) for x in train_items]  # what steps and packing are planned by
    # --batch-tokens auto: a resumed run keeps its number; a CUDA run measures it once the
    # model is built (below); on CPU it is --micro-batch-tokens
    saved_tokens = saved_batch_tokens(run) if config.resume else None
    auto_tokens = None
    if config.batch_tokens == "auto":
        auto_tokens = saved_tokens or min(config.micro_batch_tokens, memory.epoch_cap(lengths))
    measure_tokens = (config.batch_tokens == "auto" and not saved_tokens
                      and info.device.type == "cuda")
    cfg = config.resolve(len(train_items), lengths, auto_tokens)
    if isinstance(objective, PreferenceObjective):
        objective.beta = cfg.beta
    # before any process writes config.yaml (a resumed run's auto tokens are the saved ones)
    resume_from = resume_point(run, cfg)

    # ---- model, method, optimizer, schedule ------------------------------------------------
    numerics = Numerics.of(cfg.precision, info.device)
    fsdp = cfg.distributed == "fsdp" and info.world > 1
    if fsdp and (cfg.tune or cfg.quantize != "none" or cfg.optimizer != "adamw"):
        raise UsageError("--distributed fsdp trains with AdamW on unquantized weights (not "
                         "--tune, --quantize or --optimizer adamw-8bit yet); use "
                         "--distributed ddp for those.")
    model = trainable_model(cfg, start, objective, info.device, numerics, fsdp=fsdp)
    loss_fn: torch.nn.Module = objective.loss(model)
    stat_names: tuple[str, ...] = loss_fn.stats  # what the loss returns after (sum, count)
    params = [p for p in model.parameters() if p.requires_grad]
    autocast = numerics.autocast(info.device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if measure_tokens:
        tokens = memory.measure_batch_tokens(loss_fn, objective, train_items, lengths, params,
                                             cfg, info.device, autocast, pad_id)
        tokens = -D.all_reduce_max(-tokens, info)  # what fits on every process
        cfg = config.resolve(len(train_items), lengths, tokens)
        log.info("--batch-tokens auto: %d tokens fit one pass on %s", tokens, info.device)
    _log_resolved(cfg)
    hooks.on_start(dataclasses.asdict(cfg))
    eval_fn = loss_fn  # evaluation needs no gradient sync: it bypasses the DDP wrapper
    if fsdp:
        loss_fn = eval_fn = sharding.shard(loss_fn, model, info.device, info.world)
    elif info.world > 1:
        # No buffer broadcast: forward passes then hold no collective, so processes may run
        # different numbers of them (uneven shards); gradients still sync once per step.
        loss_fn = DistributedDataParallel(loss_fn, broadcast_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]  # FSDP replaced them
    optimizer = build_optimizer(cfg.optimizer, params, lr=cfg.lr,
                                weight_decay=cfg.weight_decay, device=info.device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    log.info("device %s x%d, %s, %s trainable parameters of %s", info.device, info.world,
             numerics.describe(),
             f"{sum(p.numel() for p in params):,}",
             f"{sum(p.numel() for p in model.parameters()):,}")

    def evaluate(items: list[Tokenized], prefix: str) -> dict[str, float]:
        """Mean loss and the loss's statistics (token accuracy; preference accuracy...) over
        the items' targets, sharded over processes, named `{prefix}_loss`, ..."""
        eval_fn.eval()
        sums = [0.0] * (2 + len(stat_names))
        mine = items[info.rank::info.world]
        batches = objective.batches(mine or items[:1], cfg.pack, cfg.micro_batch_tokens, pad_id)
        # FSDP: every process runs as many passes (each all-gathers); extra ones count nothing
        passes = D.all_reduce_max(len(batches), info) if fsdp else len(batches)
        with torch.no_grad(), autocast():
            for k in range(passes):
                out = eval_fn(batches[min(k, len(batches) - 1)].to(info.device))
                if mine and k < len(batches):
                    sums = [a + b.item() for a, b in zip(sums, out)]
        eval_fn.train()
        return _named(D.all_reduce_sum(sums, info), prefix, stat_names)

    # ---- resume ----------------------------------------------------------------------------
    progress = restore(resume_from, model, optimizer, scheduler, cfg.method, sharded=fsdp)
    start_epoch, step, best = progress.epoch, progress.step, progress.best
    skip_steps = progress.steps_in_epoch  # steps of the first epoch already done
    initial_valid_loss = progress.initial_valid_loss
    if info.main:
        run.mkdir(parents=True, exist_ok=True)
        write_text(run / "config.yaml", cfg.to_yaml())
    metrics = MetricsLog(run / "metrics.jsonl", keep_until_step=step if resume_from else None) \
        if info.main else None

    # ---- DPO's reference: the starting model's log-probabilities, computed once -------------
    if isinstance(objective, PreferenceObjective):
        run_reference(run, eval_fn, train_items, val_items, resuming=resume_from is not None,
                      pack=cfg.pack, max_tokens=cfg.micro_batch_tokens, pad_id=pad_id,
                      autocast=autocast, info=info, sharded=fsdp)

    def record(entry: dict) -> None:
        if metrics is not None:
            metrics.write(entry)
            hooks.on_record(entry)

    eval_batch = val_items[: cfg.eval_examples]
    if val_items and resume_from is None:
        measured = evaluate(val_items, "full_valid")
        initial_valid_loss = measured["full_valid_loss"]
        record({"step": 0, "epoch": 0, **measured})
        log.info("before training: %s", _describe(measured))

    def gather() -> tuple[dict, dict] | None:
        """FSDP: the full states, gathered (every process takes part); else None."""
        return sharding.full_state(model, optimizer, cfg.method == "lora") if fsdp else None

    def save_mid_epoch(epoch: int, steps_in_epoch: int) -> Path | None:
        """A checkpoint inside epoch `epoch` (0-based) after `steps_in_epoch` of its steps."""
        gathered = gather()
        if not info.main:
            return None
        state = {"step": step, "steps_in_epoch": steps_in_epoch,
                 "initial_valid_loss": initial_valid_loss,
                 "best": {**best, "path": str(best["path"]) if best["path"] else None}}
        path = save_checkpoint(run, epoch, model, optimizer, scheduler, state, step=step,
                               gathered=gathered)
        prune_checkpoints(run, {path} | ({best["path"]} if best["path"] else set()))
        write_results_csv(run / "results.csv", metrics.records)
        log.info("checkpoint at step %d (epoch %d, %d steps into it)", step, epoch + 1,
                 steps_in_epoch)
        return path

    # ---- the loop --------------------------------------------------------------------------
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.total_steps, initial=step, disable=cfg.quiet or not info.main,
               unit="step", dynamic_ncols=True)
    started = last_save = time.perf_counter()
    trained_tokens = 0
    loss_fn.train()
    for epoch in range(start_epoch, cfg.epochs):
        steps = epoch_steps(lengths, cfg.seed, epoch, cfg.batch_size, cfg.batch_tokens)
        for k_step, chosen in enumerate(steps):
            if epoch == start_epoch and k_step < skip_steps:
                continue  # done before the mid-epoch checkpoint this run resumed from
            t0 = time.perf_counter()
            step_items = [train_items[i] for i in chosen]
            shard = step_items[info.rank::info.world]  # each process takes its share
            # A process left without examples (a last step smaller than the process count) still
            # runs one pass, with its loss scaled to 0, because every process must join the
            # step's gradient all-reduce.
            idle = not shard
            batches = objective.batches(shard or step_items[:1], cfg.pack,
                                        cfg.micro_batch_tokens, pad_id)
            if fsdp:  # the same number of passes everywhere; the extra ones count nothing
                extra = D.all_reduce_max(len(batches), info) - len(batches)
                batches, padded = batches + [batches[0]] * extra, len(batches)
            else:
                padded = len(batches)
            # The step's loss is the mean over all its answer tokens, across micro-batches and
            # processes; DDP averages gradients over processes, hence the factor `world`.
            step_tokens = D.all_reduce_sum(
                [0 if idle else sum(b.n_targets for b in batches[:padded])], info)[0]
            sums = [0.0] * (2 + len(stat_names))
            for k, batch in enumerate(batches):
                last = k == len(batches) - 1
                if fsdp:
                    loss_fn.set_requires_gradient_sync(last)
                    sync = contextlib.nullcontext()
                else:
                    sync = (contextlib.nullcontext() if last or info.world == 1
                            else loss_fn.no_sync())
                counted = not idle and k < padded
                with sync:
                    with autocast():
                        out = loss_fn(batch.to(info.device))
                    scale = info.world / max(step_tokens, 1) if counted else 0.0
                    (out[0] * scale).backward()
                if counted:
                    sums = [a + b.item() for a, b in zip(sums, out)]
            grad_norm = (_item(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
                         if cfg.max_grad_norm > 0 else _grad_norm(params))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            trained = _named(D.all_reduce_sum(sums, info), "train", stat_names)
            tokens = D.all_reduce_sum([0.0 if idle else float(sum(b.n_tokens for b in batches))],
                                      info)[0]
            trained_tokens += int(tokens)
            seconds = time.perf_counter() - t0
            entry = {"step": step, "epoch": epoch + 1, **trained,
                     "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                     "tokens": int(tokens), "tokens_per_s": tokens / seconds}
            if eval_batch and (step % cfg.eval_every_steps == 0 or step == cfg.total_steps):
                entry.update(evaluate(eval_batch, "valid"))
            record(entry)
            bar.set_postfix(epoch=epoch + 1, loss=f"{entry['train_loss']:.4f}",
                            tok_s=f"{entry['tokens_per_s']:.0f}", refresh=False)
            bar.update(1)
            if hooks.should_stop():
                bar.close()
                raise TrainingStopped(f"stopped at step {step}")
            done_in_epoch = k_step + 1
            if done_in_epoch == len(steps):
                continue  # the epoch-end checkpoint follows
            if hooks.should_pause():
                save_mid_epoch(epoch, done_in_epoch)
                D.barrier(info)
                bar.close()
                raise TrainingPaused(f"paused at step {step}")
            due = bool((cfg.save_every_steps and step % cfg.save_every_steps == 0) or (
                cfg.save_every_minutes and
                time.perf_counter() - last_save >= 60 * cfg.save_every_minutes))
            if cfg.save_every_minutes and info.world > 1:  # clocks differ: rank 0's decides
                due = D.all_reduce_max(int(due and info.main), info) > 0
            if due:
                save_mid_epoch(epoch, done_in_epoch)
                D.barrier(info)
                last_save = time.perf_counter()

        # ---- epoch end: full validation, checkpoint, records -------------------------------
        state: dict = {"step": step, "steps_in_epoch": 0, "initial_valid_loss": initial_valid_loss}
        if val_items:
            measured = evaluate(val_items, "full_valid")
            state["full_valid_loss"] = measured["full_valid_loss"]
            record({"step": step, "epoch": epoch + 1, **measured})
            log.info("epoch %d: %s", epoch + 1, _describe(measured))
        gathered = gather()
        if info.main:
            path = run / "checkpoints" / f"epoch-{epoch + 1:03d}"
            if val_items and state["full_valid_loss"] < best["loss"]:
                best = {"loss": state["full_valid_loss"], "epoch": epoch + 1, "path": path}
            state["best"] = {**best, "path": str(best["path"]) if best["path"] else None}
            save_checkpoint(run, epoch + 1, model, optimizer, scheduler, state,
                            gathered=gathered)
            last_save = time.perf_counter()
            write_results_csv(run / "results.csv", metrics.records)
            plot_loss(run / "loss.png", metrics.records, title=f"{cfg.method} · {cfg.model}")
            hooks.on_checkpoint(epoch + 1, step, path, _latest_metrics(metrics.records))
            prune_checkpoints(run, {path} | ({best["path"]} if best["path"] else set()))
            if not fsdp:
                model.eval()
                hooks.on_epoch_end(epoch + 1, model, tokenizer, autocast)
                model.train()
        D.barrier(info)
        if hooks.end_training():
            log.info("ending after epoch %d (asked by the caller)", epoch + 1)
            break
    bar.close()
    seconds = time.perf_counter() - started
    if info.device.type == "cpu":
        allocator.release_memory()

    # ---- finish ----------------------------------------------------------------------------
    final = run / "final"
    gathered = gather()
    if info.main:
        save_final(final, model, tokenizer, cfg, objective.meta(),
                   gathered[0] if gathered else None)
    D.barrier(info)
    D.cleanup()
    final_valid = next((r["full_valid_loss"] for r in reversed(metrics.records)
                        if "full_valid_loss" in r), None) if metrics else None
    hooks.on_finish()
    return TrainResult(run, final, cfg, step, trained_tokens, initial_valid_loss, final_valid,
                       best["epoch"], seconds, trained_tokens / seconds if seconds else 0.0, model)


# ---- helpers --------------------------------------------------------------------------------


def _named(sums: list[float], prefix: str, stat_names: tuple[str, ...]) -> dict[str, float]:
    """(loss sum, count, statistic sums...) -> {prefix_loss: mean, prefix_<stat>: mean, ...}."""
    n = max(sums[1], 1)
    return {f"{prefix}_loss": sums[0] / n,
            **{f"{prefix}_{name}": value / n for name, value in zip(stat_names, sums[2:])}}


def _describe(measured: dict[str, float]) -> str:
    return ", ".join(f"{k.split('_', 2)[-1] if k.startswith('full_valid') else k} {v:.4f}"
                     for k, v in measured.items())


def _check_loss_fits_data(config: TrainConfig, examples: list[Example]) -> None:
    """DPO needs preference rows; supervised training is refused on them (which answer would
    it learn?)."""
    pairs = sum(isinstance(e, PreferenceExample) for e in examples)
    if config.loss == "dpo" and pairs < len(examples):
        raise UsageError(f"{config.train_file}: --method dpo needs preference rows "
                         '({"input": ..., "preferred_output": [...], "non_preferred_output": '
                         "[...]}); this file holds chat examples.")
    if config.loss == "sft" and pairs:
        raise UsageError(f"{config.train_file} holds preference rows (preferred and "
                         "non-preferred outputs): train them with --method dpo (LoRA) or "
                         "--method full-dpo.")


def _latest_metrics(records: list[dict]) -> dict:
    """The newest value of every metric (OpenAI's checkpoint `metrics`)."""
    out: dict = {}
    for r in records:
        out.update({k: v for k, v in r.items() if k not in ("epoch", "tokens", "tokens_per_s")})
    return out


def _examples(path: str) -> list[Example]:
    data = read_dataset(path)
    if data.errors:
        raise InvalidDataError(path, data.errors, f"{len(data.errors)} errors; run `tunesmith data "
                               "check` on it for details.")
    spec = read_task(Path(path).parent)
    return [e.with_system(spec.system if spec else None) for e in data.examples]


def _tokenize(objective, tokenizer, examples: list[Example], max_seq_len: int,
              name: str, model: str, source: str) -> list[Tokenized]:
    check_tools(tokenizer, examples, model, f"the {name} file")  # not silently dropped
    if isinstance(objective, Objective) and objective.head == "lm":
        # batched, and cached by the file's and the tokenizer's contents (a resume or a second
        # run of the same data reads the arrays back)
        spec = read_task(Path(source).parent)
        items = tokenize_many(tokenizer, examples, max_seq_len, source,
                              spec.system if spec else None)
    else:
        items = [objective.tokenize(tokenizer, e, max_seq_len) for e in examples]
    truncated = sum(x.truncated for x in items)
    kept = [x for x in items if x.n_loss_tokens > 0]
    if truncated:
        log.warning("%s: %d examples longer than --max-seq-len %d were truncated", name, truncated,
                    max_seq_len)
    if len(kept) < len(items):
        log.warning("%s: %d examples have no answer token left after truncation and are skipped",
                    name, len(items) - len(kept))
    if name == "train" and not kept:
        raise UsageError("no training example has an answer token to learn from.")
    return kept


def _schedule(cfg: ResolvedConfig):
    """Multiplier of the peak learning rate at each step: linear warm-up, then decay to 0."""
    warm, total = cfg.warmup_steps, max(cfg.total_steps, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = (step - warm) / max(total - warm, 1)
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if cfg.schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def _item(value: torch.Tensor) -> float:
    """A scalar tensor's value; a sharded one (FSDP's DTensor) is gathered first."""
    full = getattr(value, "full_tensor", None)
    return (full() if callable(full) else value).item()


def _grad_norm(params: list[torch.Tensor]) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0


def _log_resolved(cfg: ResolvedConfig) -> None:
    auto = set(cfg.auto)
    tag = lambda k: " (auto)" if k in auto else ""
    batch = (f"batches of {cfg.batch_tokens:,} tokens (~{cfg.batch_size} examples)"
             if cfg.batch_tokens else f"batch {cfg.batch_size} examples{tag('batch_size')}")
    log.info("%d training examples -> epochs %d%s, %s, lr %.2g%s", cfg.n_train, cfg.epochs,
             tag("epochs"), batch, cfg.lr, tag("lr"))
    log.info("%d steps (%d per epoch), %d warm-up, %s decay, eval every %d steps, %s",
             cfg.total_steps, cfg.steps_per_epoch, cfg.warmup_steps, cfg.schedule,
             cfg.eval_every_steps, "packed, no padding" if cfg.pack else "padded rows")
