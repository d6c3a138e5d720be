"""``evrobust train``: train a spiking network with a defense (``evrobust.defenses.DEFENSES``) into a run dir.

The loop (paper Appendix D): SGD with momentum, cosine annealing over ``epochs`` (stepped once per epoch),
the defense's loss on each (augmented) batch, DSD's gradient deflation between the backward pass and the
optimizer step, the RAT retraction after each optimizer step; after each
epoch the validation split is scored, ``metrics.jsonl`` gets a line, ``checkpoint-last`` is written and
``checkpoint-best`` when validation accuracy improved. The test split is never touched.

Reproducibility: weights from ``seed``; the data order of an epoch from ``(seed, epoch)`` only; augmentation,
attack noise and RAT row sampling from RNGs whose states are saved in every checkpoint. On CPU a run that is
interrupted after any epoch and resumed ends with bit-identical weights to an uninterrupted one.

Scale: CUDA with optional bf16 autocast and channels-last memory; under ``torchrun`` the same command trains
with DistributedDataParallel (``--batch-size`` is the global batch, split over the ranks; rank 0 writes).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from evrobust.checkpoint import flatten_state, load_checkpoint, unflatten_state
from evrobust.datasets import augment_frames, augment_images, open_split, resolve_data, store_info
from evrobust.defenses import (
    DefenseObjective,
    after_optimizer_step,
    before_optimizer_step,
    strongest_other_class,
    two_class_probability,
)
from evrobust.errors import UserInputError
from evrobust.models import create_model, list_models
from evrobust.neurons import enable_input_gains
from evrobust.pipelines.train import distributed as dd
from evrobust.pipelines.train.checkpoints import (
    check_checkpoint_meta,
    check_optimizer_state,
    non_finite_tensors,
    remove_stale_temporaries,
    save_or_explain,
)
from evrobust.pipelines.train.config import TrainConfig, resolve_config
from evrobust.pipelines.train.data import Batches, build_model_kwargs, check_model_fits_data
from evrobust.pipelines.train.progress import StepProgress
from evrobust.pipelines.train.run_dir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    MODEL_PREFIX,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    append_metrics,
    data_section,
    git_commit,
    metrics_path,
    model_state_from,
    now_iso,
    prepare_run_dir,
    truncate_metrics,
    versions,
    write_json_atomic,
)
from evrobust.preprocess.locks import ExclusiveLock
from evrobust.preprocess.locks import acquire as acquire_lock
from evrobust.safeio import remove_file

log = logging.getLogger(__name__)

GRAD_NORM_BATCH = 64  # samples of the fixed validation batch for the input-gradient norms


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the run directory keeps the last good checkpoint."""


def default_run_dir(config: TrainConfig, dataset: str) -> Path:
    """``runs/<dataset>-<model>-<defense>-s<seed>`` when ``--out`` is not given."""
    return Path("runs") / f"{dataset}-{config.model}-{config.defense}-s{config.seed}"


def _rank_seed(seed: int, rank: int, stream: int) -> int:
    """Independent seeds per (rank, stream) derived from the run seed."""
    return (seed * 1_000_003 + rank * 7919 + stream * 104_729) % (2**63)


class Trainer:
    """One training run; :meth:`fit` trains and returns the run directory.

    Attributes (after construction): ``config`` (resolved), ``info`` (the data), ``model`` (bare module),
    ``run_dir``, ``ctx`` (distributed context), ``epoch`` (epochs completed).
    """

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        if config.model not in list_models():
            raise UserInputError(f"unknown model {config.model!r}; choose one of: {', '.join(list_models())}")
        self.ctx = dd.setup_distributed(config.device)
        self._lock: ExclusiveLock | None = None
        try:
            self._setup(config)
        except BaseException:
            self.release_lock()
            dd.teardown_distributed(self.ctx)
            raise

    def release_lock(self) -> None:
        """Give back the run directory's writer lock (done by :meth:`fit` when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ set-up
    def _setup(self, user_config: TrainConfig) -> None:
        ctx = self.ctx
        # Rank 0 resolves first: an embedded store is built on first use, and only once.
        store = resolve_data(user_config.data, user_config.data_dir) if ctx.is_main else None
        dd.barrier(ctx)
        if not ctx.is_main:
            store = resolve_data(user_config.data, user_config.data_dir)
        self.info = store_info(store)
        self.config = config = resolve_config(user_config, self.info.name, self.info.kind, self.info.frames)
        self.defense = config.defense_config()
        self.run_dir = Path(config.out) if config.out else default_run_dir(config, self.info.name)
        self.device = ctx.device
        self.amp = config.amp and self.device.type == "cuda"
        if config.amp and not self.amp:
            log.warning("--amp needs CUDA; training in float32 on %s", self.device)
        if self.amp and self.defense.uses_sr:
            log.warning(
                "bf16 logits quantise the SR finite difference (h=%g); float32 is more faithful", config.h
            )

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        model_kwargs = build_model_kwargs(config, self.info)
        check_model_fits_data(model_kwargs, self.info)
        self.model = create_model(**model_kwargs)
        if config.input_gain:  # DLIF's learnable per-step gain: parameters the optimizer below must see
            enable_input_gains(self.model, int(self.model.config["T"]))
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)

        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            self.parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        self.defense_objective = DefenseObjective(self.model, self.defense)
        self.objective: nn.Module = self.defense_objective
        if ctx.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.objective = DistributedDataParallel(self.objective, device_ids=device_ids)

        # RNG streams: the global one (PGD random start; per rank), augmentation (per rank, CPU),
        # RAT row sampling (the same on every rank, so that the ranks' weights stay identical).
        torch.manual_seed(_rank_seed(config.seed, ctx.rank, 1))
        self.aug_generator = torch.Generator().manual_seed(_rank_seed(config.seed, ctx.rank, 2))
        self.rat_generator = torch.Generator().manual_seed(_rank_seed(config.seed, 0, 3))

        self.train_data = Batches(open_split(store, "train"), config.limit_train, config.workers)
        self.val_data = Batches(open_split(store, "val"), config.limit_val, config.workers)
        if self.train_data.n == 0 or self.val_data.n == 0:
            raise UserInputError(f"store {store} has an empty train or val split; rebuild it")

        self.document = self._document(store)
        self.epoch = 0
        self.global_step = 0
        self.best_val_acc = -1.0
        self.best_epoch = 0
        # One writer per run directory: a second `evrobust train --out` on it is refused, naming the holder.
        self._lock = acquire_lock(self.run_dir, "evrobust train") if ctx.is_main else None
        resume = prepare_run_dir(self.run_dir, self.document, config.resume)
        dd.barrier(ctx)  # every rank has checked the directory before rank 0 writes into it
        if ctx.is_main:
            remove_stale_temporaries(self.run_dir)
        if resume:
            self._restore(self.run_dir / LAST_CHECKPOINT)
        elif config.resume:
            if not (self.run_dir / CONFIG_FILE).is_file():
                raise UserInputError(
                    f"--resume: {self.run_dir} holds no run to resume; check --out, or drop --resume to "
                    "start a new run there"
                )
            log.info("%s has no checkpoint yet (stopped in epoch 1); starting it afresh", self.run_dir)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume:
                truncate_metrics(self.run_dir, self.epoch)
            else:
                remove_file(metrics_path(self.run_dir))  # a link or FIFO there is refused, not deleted
            write_json_atomic(self.run_dir / CONFIG_FILE, self.document)
        dd.barrier(ctx)

    def _document(self, store: Path) -> dict[str, Any]:
        """The ``config.json`` contents."""
        info, config = self.info, self.config
        return {
            "format": RUN_FORMAT,
            "format_version": RUN_FORMAT_VERSION,
            "created": now_iso(),
            "identity": config.identity(),
            "train": config.to_dict(),
            "defense": self.defense.to_dict(),
            "model": self.model.config,
            "data": {
                **data_section(info, config.data, store),
                "train_samples": self.train_data.n,
                "val_samples": self.val_data.n,
            },
            "runtime": {
                "device": str(self.device),
                "world_size": self.ctx.world_size,
                "amp_bf16": self.amp,
                "per_rank_batch": self.per_rank_batch,
            },
            "versions": versions(),
            "git_commit": git_commit(),
        }

    @property
    def per_rank_batch(self) -> int:
        """``ceil(batch_size / world_size)``: ``--batch-size`` is the global batch."""
        return -(-int(self.config.batch_size) // self.ctx.world_size)

    # ------------------------------------------------------------------ checkpoints
    def _rng_state(self) -> dict[str, Tensor | None]:
        return {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "aug": self.aug_generator.get_state(),
        }

    def _save(self, improved: bool) -> None:
        """Write checkpoint-last (and -best); a collective call: every rank contributes its RNG state."""
        ranks = dd.all_gather_objects(self._rng_state(), self.ctx)
        if not self.ctx.is_main:
            return
        tensors = {MODEL_PREFIX + k: v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_tree = flatten_state(self.optimizer.state_dict(), "optimizer")
        rng_tensors, rng_tree = flatten_state({"ranks": ranks, "rat": self.rat_generator.get_state()}, "rng")
        tensors.update(opt_tensors)
        bad = non_finite_tensors(tensors)
        if bad:  # never reached after _refuse_non_finite_state; kept so no path can save NaN weights
            raise NonFiniteLossError(f"refusing to save a checkpoint with non-finite tensors ({bad[0]}, ...)")
        tensors.update(rng_tensors)
        metadata = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "world_size": self.ctx.world_size,
            "optimizer": opt_tree,
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_tree,
            "model_config": self.model.config,
        }
        if improved:
            save_or_explain(self.run_dir / BEST_CHECKPOINT, tensors, metadata)
        save_or_explain(self.run_dir / LAST_CHECKPOINT, tensors, metadata)

    def _restore(self, path: Path) -> None:
        """Continue from a checkpoint; a damaged or foreign one is one UserInputError line."""
        try:
            self._restore_state(path)
        except UserInputError:
            raise
        except (
            KeyError, IndexError, ValueError, TypeError, RuntimeError, AttributeError, ZeroDivisionError,
            OverflowError, RecursionError,
        ) as exc:  # fmt: skip
            message = " ".join(str(exc).split())[:200]
            raise UserInputError(
                f"checkpoint {path} cannot be resumed from ({type(exc).__name__}: {message}); it is damaged "
                "or belongs to another run: restore a good copy, or move it away to start the run afresh"
            ) from None

    def _restore_state(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        check_checkpoint_meta(path, meta, self.config.epochs)
        self.model.load_state_dict(model_state_from(tensors))
        optimizer_state = unflatten_state(meta["optimizer"], tensors)
        self.optimizer.load_state_dict(optimizer_state)
        check_optimizer_state(path, self.optimizer, self.parameters)
        self.scheduler.load_state_dict(meta["scheduler"])
        rng = unflatten_state(meta["rng"], tensors)
        self.rat_generator.set_state(rng["rat"])
        if meta["world_size"] == self.ctx.world_size:
            mine = rng["ranks"][self.ctx.rank]
            torch.set_rng_state(mine["cpu"])
            if mine["cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.device)
            self.aug_generator.set_state(mine["aug"])
        else:
            log.warning(
                "checkpoint was written by %d processes, resuming with %d: augmentation and attack noise "
                "are reseeded, so the run will not repeat bit for bit",
                meta["world_size"],
                self.ctx.world_size,
            )
            torch.manual_seed(_rank_seed(self.config.seed + meta["epoch"], self.ctx.rank, 1))
        self.epoch = int(meta["epoch"])
        self.global_step = int(meta["global_step"])
        self.best_val_acc = float(meta["best_val_acc"])
        self.best_epoch = int(meta["best_epoch"])
        log.info(
            "resumed %s after epoch %d (best val acc %.2f%%)", self.run_dir, self.epoch, self.best_val_acc
        )

    # ------------------------------------------------------------------ loop
    def fit(self) -> Path:
        """Train the remaining epochs; returns the run directory."""
        config = self.config
        try:
            if self.ctx.is_main:
                log.info(
                    "training %s on %s (%d train / %d val) with %s for %d epochs on %s%s -> %s",
                    config.model,
                    self.info.name,
                    self.train_data.n,
                    self.val_data.n,
                    config.defense,
                    config.epochs,
                    self.device,
                    f" x{self.ctx.world_size}" if self.ctx.distributed else "",
                    self.run_dir,
                )
            ran = 0
            with StepProgress(config.progress if self.ctx.is_main else False) as progress:
                while self.epoch < config.epochs:
                    if config.stop_after is not None and ran >= config.stop_after:
                        log.info("stopping after %d epochs as asked; resume with --resume", ran)
                        break
                    self._one_epoch(progress)
                    ran += 1
            if self.epoch >= config.epochs and self.ctx.is_main:
                log.info(
                    "done: best val acc %.2f%% at epoch %d; run in %s",
                    self.best_val_acc,
                    self.best_epoch,
                    self.run_dir,
                )
            return self.run_dir
        finally:
            self.release_lock()
            dd.teardown_distributed(self.ctx)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _augment(self, x: Tensor) -> Tensor:
        if not self.config.augment:
            return x
        if self.info.kind == "frames":
            return augment_frames(x, generator=self.aug_generator)
        return augment_images(x, generator=self.aug_generator)

    def _one_epoch(self, progress: StepProgress) -> None:
        config, ctx = self.config, self.ctx
        epoch = self.epoch + 1
        order = dd.shard(
            dd.epoch_permutation(self.train_data.n, config.seed, epoch), ctx.rank, ctx.world_size
        )
        batch = self.per_rank_batch
        if order.numel() % batch == 1 and order.numel() > 1:
            order = order[:-1]  # a lone last sample would give BatchNorm a batch of one
        steps = -(-order.numel() // batch)
        progress.start(f"epoch {epoch}/{config.epochs}", steps)
        self.objective.train()
        self.defense_objective.progress = epoch / config.epochs  # TGO's lambda warm-up
        lr = self.optimizer.param_groups[0]["lr"]
        sums = torch.zeros(5, dtype=torch.float64)  # loss*n, ce*n, reg*n, correct, n (over all ranks)
        started = time.perf_counter()
        for step, (x, y) in enumerate(self.train_data.iterate(order, batch, self.device)):
            x = self._augment(x)
            if self.device.type == "cuda" and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.objective(x, y)
            n = y.numel()
            correct = (out["logits"].detach().argmax(1) == y).sum()
            stats = torch.stack(
                [
                    out["loss"].detach().float() * n,
                    out["ce"].detach().float() * n,
                    out["reg"].float() * n,
                    correct.float(),
                    torch.tensor(float(n), device=y.device),
                ]
            ).double()
            stats = dd.all_reduce_sum(stats, ctx).cpu()  # also the sync that makes the finite check global
            if not math.isfinite(float(stats[0])):
                raise NonFiniteLossError(
                    f"the training loss became {float(stats[0] / stats[4])} "
                    f"at epoch {epoch} step {step + 1}; "
                    f"{self._last_good()} Lower --lr or --lam, or train without --amp"
                )
            self.optimizer.zero_grad(set_to_none=True)
            # Gradients for the parameters only: SR's clean pass starts at an input leaf that requires grad,
            # and its input gradient (a first-layer backward per step) is not needed here.
            out["loss"].backward(inputs=self.parameters)
            before_optimizer_step(self.model, self.defense)  # DSD: on the gradients DDP has already reduced
            self.optimizer.step()
            after_optimizer_step(self.model, self.defense, generator=self.rat_generator)
            self.global_step += 1
            sums += stats
            progress.advance(f"loss {float(sums[0] / sums[4]):.4f} acc {100 * float(sums[3] / sums[4]):.1f}%")
        self.scheduler.step()
        if ctx.distributed:  # BatchNorm running statistics: rank 0's everywhere (DDP syncs them per forward)
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        val_acc = self._validate()
        grad_norms = self._grad_norms() if ctx.is_main else {}
        self._refuse_non_finite_state(epoch)  # before anything of this epoch is recorded or saved
        self.epoch = epoch
        improved = val_acc > self.best_val_acc
        if improved:
            self.best_val_acc, self.best_epoch = val_acc, epoch
        count = float(sums[4])
        record = {
            "epoch": epoch,
            "step": self.global_step,
            "lr": lr,
            "loss": float(sums[0]) / count,
            "ce": float(sums[1]) / count,
            "reg": float(sums[2]) / count,
            "train_acc": 100.0 * float(sums[3]) / count,
            "val_acc": val_acc,
            "best_val_acc": self.best_val_acc,
            "seconds": seconds,
            **grad_norms,
        }
        if ctx.is_main:
            append_metrics(self.run_dir, record)
        self._save(improved)
        dd.barrier(ctx)
        if ctx.is_main:
            log.info(
                "epoch %d/%d: loss %.4f (ce %.4f reg %.4g) train acc %.2f%% val acc %.2f%% lr %.4g %.1fs",
                epoch,
                config.epochs,
                record["loss"],
                record["ce"],
                record["reg"],
                record["train_acc"],
                val_acc,
                lr,
                seconds,
            )

    def _state_tensors(self) -> dict[str, Tensor]:
        """The model's and the optimizer's tensors as a checkpoint holds them (RNG states aside)."""
        tensors = {MODEL_PREFIX + k: v for k, v in self.model.state_dict().items()}
        tensors.update(flatten_state(self.optimizer.state_dict(), "optimizer")[0])
        return tensors

    def _refuse_non_finite_state(self, epoch: int) -> None:
        """Stop before a weight, buffer or optimizer tensor that is NaN/inf is recorded or saved.

        The loss guard alone misses this: an IF neuron never fires on a NaN membrane, so a model with NaN
        weights can still produce a finite loss and would otherwise be saved as "best".
        """
        bad = non_finite_tensors(self._state_tensors())
        if bad:
            raise NonFiniteLossError(
                f"after epoch {epoch}, {len(bad)} model/optimizer tensors are not finite (first: {bad[0]}); "
                f"nothing of this epoch was saved; {self._last_good()} Lower --lr, --lam or --h"
            )

    def _last_good(self) -> str:
        if self.epoch == 0:
            return "no epoch had finished, so there is no checkpoint."
        return f"the last good checkpoint is {self.run_dir / LAST_CHECKPOINT} (epoch {self.epoch})."

    @torch.no_grad()
    def _validate(self) -> float:
        """Clean accuracy (%) on the validation split, each rank scoring its shard."""
        self.model.eval()
        order = dd.shard(torch.arange(self.val_data.n), self.ctx.rank, self.ctx.world_size)
        if self.ctx.distributed:  # the padding repeats samples; score each once
            order = order[
                (self.ctx.rank + self.ctx.world_size * torch.arange(order.numel())) < self.val_data.n
            ]
        counts = torch.zeros(2, dtype=torch.float64)
        for x, y in self.val_data.iterate(order, 2 * self.per_rank_batch, self.device):
            with self._autocast():
                logits = self.model(x)
            counts += torch.tensor(
                [float((logits.argmax(1) == y).sum()), float(y.numel())], dtype=torch.float64
            )
        counts = dd.all_reduce_sum(counts, self.ctx)
        self.model.train()
        return 100.0 * float(counts[0] / counts[1])

    def _grad_norms(self) -> dict[str, float]:
        """Mean l1 / l2 norms and the zero share of ``grad_x f_y`` on a fixed validation batch (eval mode).

        ``f_y`` is the two-class softmax ``sigmoid(z_y - z_k)`` that SR regularises (k = strongest other
        class); norms are in input units over all of a sample's entries (``C*H*W`` or ``T*2*H*W``).
        """
        self.model.eval()
        x, y = self.val_data.fixed(GRAD_NORM_BATCH, self.device)
        x = x.clone().requires_grad_(True)
        logits = self.model(x).float()
        p = two_class_probability(logits, y, strongest_other_class(logits, y))
        (grad,) = torch.autograd.grad(p.sum(), x)
        flat = grad.flatten(1).double()
        self.model.train()
        return {
            "val_grad_l1": float(flat.abs().sum(1).mean()),
            "val_grad_l2": float(flat.norm(dim=1).mean()),
            "val_grad_zero_frac": float((flat == 0).double().mean()),
        }


def train(config: TrainConfig) -> Path:
    """Train as configured; returns the run directory (layout: :mod:`evrobust.pipelines.train.run_dir`)."""
    return Trainer(config).fit()


__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "default_run_dir",
    "train",
]
