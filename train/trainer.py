"""Shared Lightning Trainer set-up for the training CLIs."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

from runtime.core.cli import bounded_int, thread_count, worker_count
from runtime.core.errors import UserError

__all__ = ["add_hardware_options", "build_trainer", "checkpoint_callbacks", "quiet_lightning"]


def add_hardware_options(group, workers: int = 0) -> None:
    """--accelerator, --devices, --num-nodes, --strategy, --precision, --workers (default ``workers``), --threads."""
    group.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda", "mps"], help="where to train")
    group.add_argument("--devices", default="auto", help="device count, list such as 0,1, or auto")
    group.add_argument("--num-nodes", type=bounded_int(1, 65536), default=1, help="machines for multi-node DDP")
    group.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")
    group.add_argument("--precision", default="32-true", choices=["32-true", "16-mixed", "bf16-mixed", "64-true"],
                       help="Lightning precision; 16-mixed and bf16-mixed are automatic mixed precision")
    group.add_argument("--workers", type=worker_count, default=workers,
                       help=f"DataLoader worker processes (default: {workers})")
    group.add_argument("--threads", type=thread_count, default=None, help="CPU threads for PyTorch (default: all cores)")


def checkpoint_callbacks(folder: Path, monitor: str) -> list:
    """best.ckpt (lowest ``monitor``) and last.ckpt (refreshed every epoch, for --resume).

    Lightning's own ``save_last=True`` refreshes last.ckpt only when a new best is saved, so the
    last epoch gets a callback of its own.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    return [
        ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, mode="min", save_top_k=1,
                        auto_insert_metric_name=False, enable_version_counter=False),
        ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                        auto_insert_metric_name=False, enable_version_counter=False),
    ]


def quiet_lightning(quiet: bool) -> None:
    """Keep Lightning's start-up chatter and known-harmless warnings off the console."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*Checkpoint directory .* exists and is not empty.*",
                    ".*The number of training batches .* is smaller than the logging interval.*",
                    ".*Experiment logs directory .* exists and is not empty.*",
                    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*"):
        warnings.filterwarnings("ignore", message=pattern)
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)


def build_trainer(args: argparse.Namespace, out: Path, callbacks: list, max_epochs: int, quiet: bool,
                  max_minutes: float | None = None):
    """A Trainer logging CSV to ``out``, writing checkpoints atomically; bad hardware options become UserError."""
    import lightning as L
    import torch
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from .checkpoint_io import AtomicCheckpointIO

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return L.Trainer(
            accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
            precision=args.precision, max_epochs=max_epochs,
            max_time={"minutes": max_minutes} if max_minutes else None,
            logger=CSVLogger(out, name="", version=""),
            callbacks=[*callbacks, LearningRateMonitor(logging_interval="epoch")],
            plugins=[AtomicCheckpointIO()], enable_progress_bar=not quiet, enable_model_summary=False,
            log_every_n_steps=10, num_sanity_val_steps=0,
        )
    except (ValueError, MisconfigurationException) as exc:  # devices, strategy or hardware the machine lacks
        raise UserError(str(exc).strip().splitlines()[0]) from None
