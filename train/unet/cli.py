"""``python -m train.unet``: train seed 000's relighting U-Net, on synthetic scenes or your own data.

    python -m train.unet                                  # edge preset, synthetic data, CPU or GPU
    python -m train.unet --preset seed --data PATH --devices 4 --precision 16-mixed
    python -m train.unet make-dataset --out data/relight  # write the synthetic set to disk

A run folder (``--out``) receives best.ckpt and last.ckpt (the checkpoint contract of
``train.checkpoint``), metrics.csv, comparison grids under grids/, loss_curve.png, and at the end
metrics.json with held-out PSNR, SSIM and relative error for the network and the analytic
Lambertian baseline.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from runtime.core.cli import (ArgumentParser, batch_samples, bounded_float, bounded_int, budget_minutes, image_size,
                              learning_rate, loss_weight, open_fraction, random_seed)
from runtime.core.errors import UserError
from ..io import check_run_folder, clear_run_folder
from ..trainer import add_hardware_options, build_trainer, checkpoint_callbacks, quiet_lightning

log = logging.getLogger("train.unet")

RUN_FILES = ("best.ckpt", "last.ckpt", "metrics.csv", "hparams.yaml", "metrics.json", "loss_curve.png", "test_grid.png")
SYNTHETIC_SEEDS = {"train": 0, "val": 10_000_000, "test": 20_000_000}


def _add_scene_options(group, prefix: str = "") -> None:
    """Image size and scene counts of the synthetic splits (training and make-dataset share them)."""
    group.add_argument("--size", type=image_size, default="256", metavar="N|HxW", help=f"{prefix}image size")
    group.add_argument("--train-samples", type=bounded_int(1, 1_000_000), default=400, help=f"{prefix}training scenes")
    group.add_argument("--val-samples", type=bounded_int(1, 1_000_000), default=32, help=f"{prefix}validation scenes")
    group.add_argument("--test-samples", type=bounded_int(1, 1_000_000), default=48,
                       help=f"{prefix}held-out test scenes")


def build_parser() -> ArgumentParser:
    from ..models import list_models

    presets = [name.split("_", 1)[1] for name in list_models("unet")]
    p = ArgumentParser(
        prog="python -m train.unet",
        description=__doc__.replace("``", "") + "\nmake-dataset options: python -m train.unet make-dataset --help",
        epilog="Data format for --data PATH: see train/unet/data.py or the README.",
    )
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=presets, default="edge",
                   help="'seed' has the seed's widths (33M parameters), 'edge' is narrow for video, 'test' is tiny")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", metavar="synthetic|PATH",
                   help="'synthetic' renders scenes in memory; otherwise a dataset folder (train/, optional val/ test/)")
    _add_scene_options(g, "synthetic ")
    g.add_argument("--val-fraction", type=open_fraction, default=0.1,
                   help="share of a --data folder's training samples held out for validation when it has no val/")
    g.add_argument("--test-fraction", type=open_fraction, default=0.1,
                   help="share held out for the final test when the folder has no test/")
    g.add_argument("--patches", type=bounded_int(1, 65536), default=16,
                   help="desired training patches per image; the patch side is computed from it (seed 000)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=bounded_int(1, 1_000_000), default=10, help="maximum epochs")
    g.add_argument("--max-minutes", type=budget_minutes, default=None, help="stop training after this many minutes")
    g.add_argument("--batch-size", type=batch_samples, default=16, help="training patches per batch (per device)")
    g.add_argument("--lr", type=learning_rate, default=2e-3, help="Adam learning rate")
    g.add_argument("--weight-decay", type=bounded_float(0.0, 10.0), default=0.0, help="Adam weight decay")
    g.add_argument("--plateau-patience", type=bounded_int(0, 1_000_000), default=1,
                   help="epochs without validation improvement before ReduceLROnPlateau halves the rate")
    g.add_argument("--plateau-factor", type=open_fraction, default=0.5, help="ReduceLROnPlateau factor")
    g.add_argument("--mse-weight", type=loss_weight, default=1.0, help="weight of the MSE term")
    g.add_argument("--perceptual-weight", type=loss_weight, default=None,
                   help="weight of the VGG16 perceptual term (default 0.05; when the ImageNet weights cannot be "
                        "had it is dropped with a warning, unless you set it explicitly)")
    g.add_argument("--luminance-weight", type=loss_weight, default=0.0,
                   help="weight of the luminance MSE term (seed 001)")
    g.add_argument("--seed", type=random_seed, default=0, help="seed for weights, data order and synthetic scenes")
    g = p.add_argument_group("hardware (Lightning)")
    add_hardware_options(g)
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="train in the NHWC memory format (about 30%% faster on CPUs, and suits tensor cores)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("runs/unet"), metavar="DIR", help="run folder")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last.ckpt")
    g.add_argument("--grid-every", type=bounded_int(0, 1_000_000), default=1,
                   help="write a comparison grid every N epochs (0: only the final one)")
    g.add_argument("--grid-images", type=bounded_int(1, 256), default=4, help="samples per comparison grid")
    g.add_argument("--quiet", action="store_true", help="no progress bars or progress messages; results and errors only")
    return p


def build_dataset_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m train.unet make-dataset",
        description="Render synthetic relighting scenes and write them in the dataset format --data reads.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder to create")
    _add_scene_options(p)
    p.add_argument("--seed", type=random_seed, default=0, help="seed offset of the scenes")
    p.add_argument("--workers", type=bounded_int(1, 1024), default=None, help="render processes (default: all cores)")
    return p


def render_splits(size, counts: dict[str, int], seed: int, workers: int | None = None, progress: bool = True):
    """Render the synthetic train / val / test splits (disjoint scene seeds)."""
    from ..data.render import RenderConfig, render_config_dict, render_dataset

    cfg = RenderConfig(height=size[0], width=size[1])
    splits = {}
    for split, count in counts.items():
        splits[split] = render_dataset(count, seed=SYNTHETIC_SEEDS[split] + seed * count, cfg=cfg,
                                       workers=workers, progress=progress)
    meta = {"source": "synthetic", "light_intensity": cfg.light_intensity, "render": render_config_dict(cfg),
            "seed": seed, "samples": counts}
    return splits, meta


def make_dataset(argv: Sequence[str] | None) -> int:
    from .data import save_dataset

    args = build_dataset_parser().parse_args(argv)
    if args.out.exists():
        raise UserError(f"{args.out} already exists; choose a new folder")
    start = time.perf_counter()
    counts = {"train": args.train_samples, "val": args.val_samples, "test": args.test_samples}
    splits, meta = render_splits(args.size, counts, args.seed, args.workers)
    save_dataset(args.out, splits, meta)
    print(f"wrote {sum(counts.values())} scenes of {args.size[0]}x{args.size[1]} to {args.out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def _prepare_data(args) -> tuple[dict, dict]:
    from .data import fit_light_intensity, load_dataset, split_arrays

    if args.data == "synthetic":
        counts = {"train": args.train_samples, "val": args.val_samples, "test": args.test_samples}
        log.info("rendering %d synthetic scenes of %dx%d", sum(counts.values()), *args.size)
        splits, meta = render_splits(args.size, counts, args.seed, progress=not args.quiet)
    else:
        splits, meta = load_dataset(args.data)
        meta = {"source": str(Path(args.data).resolve()), **meta}
        train = splits["train"]
        if "val" not in splits and "test" not in splits:
            splits["train"], splits["val"], splits["test"] = split_arrays(train, (args.val_fraction, args.test_fraction), args.seed)
        elif "val" not in splits:
            splits["train"], splits["val"] = split_arrays(train, (args.val_fraction,), args.seed)
        elif "test" not in splits:
            splits["train"], splits["test"] = split_arrays(train, (args.test_fraction,), args.seed)
        if "light_intensity" not in meta:
            meta["light_intensity"] = fit_light_intensity(splits["train"])
            meta["light_intensity_fitted"] = True
    shape = splits["train"]["distances"].shape
    meta.update(
        image_size=list(shape[1:3]),
        albedo_channels=int(splits["train"]["albedo"].shape[-1]),
        samples={split: int(len(a["distances"])) for split, a in splits.items()},
    )
    for split, arrays in splits.items():
        arrays.pop("lights", None)
    return splits, meta


def train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_run_folder(args.out, RUN_FILES, overwrite=args.overwrite, resume=args.resume)
    if args.data != "synthetic" and not Path(args.data).exists():
        raise UserError(f"data path does not exist: {args.data}")
    if args.val_fraction + args.test_fraction >= 1:
        raise UserError("--val-fraction plus --test-fraction must be below 1")

    import lightning as L

    from .evaluate import finish_run
    from .module import ComparisonGrid, RelightingDataModule, RelightingModule

    quiet_lightning(args.quiet)
    L.seed_everything(args.seed, verbose=False)
    callbacks = [*checkpoint_callbacks(args.out, "val/loss"),
                 ComparisonGrid(args.out / "grids", every=args.grid_every, images=args.grid_images)]
    trainer = build_trainer(args, args.out, callbacks, max_epochs=args.epochs, quiet=args.quiet,
                            max_minutes=args.max_minutes)
    start = time.perf_counter()
    splits, data_meta = _prepare_data(args)
    data = RelightingDataModule(splits, data_meta, batch_size=args.batch_size, num_patches=args.patches,
                                workers=args.workers, seed=args.seed)
    if len(data.train_set) < args.batch_size:
        raise UserError(f"--batch-size {args.batch_size} exceeds the {len(data.train_set)} training patches; "
                        "lower it or add data")
    explicit_perceptual = args.perceptual_weight is not None
    loss_weights = {"mse": args.mse_weight, "perceptual": args.perceptual_weight if explicit_perceptual else 0.05,
                    "luminance": args.luminance_weight}
    try:
        module = RelightingModule(
            model_name=f"unet_{args.preset}",
            model_config={"albedo_channels": data_meta["albedo_channels"]},
            lr=args.lr, weight_decay=args.weight_decay, loss_weights=loss_weights,
            perceptual_required=explicit_perceptual and args.perceptual_weight > 0,
            plateau_patience=args.plateau_patience, plateau_factor=args.plateau_factor,
            light_intensity=float(data_meta["light_intensity"]), data_summary=data.summary,
            channels_last=args.channels_last,
        )
    except ValueError as exc:  # config dataclasses name the bad value
        raise UserError(str(exc)) from None
    if not args.resume:
        clear_run_folder(args.out, RUN_FILES, folders=("grids",))
    args.out.mkdir(parents=True, exist_ok=True)
    trainer.fit(module, datamodule=data, ckpt_path=args.out / "last.ckpt" if args.resume else None)
    train_seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt
    if trainer.is_global_zero:
        if not (args.out / "best.ckpt").is_file():
            raise UserError("training stopped before the first validation, so no checkpoint was written; "
                            "allow more --max-minutes")
        finish_run(args.out, splits.get("test") or splits["val"], float(data_meta["light_intensity"]),
                   extra={"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                          "train_seconds": round(train_seconds, 1), "epochs_completed": trainer.current_epoch},
                   grid_images=args.grid_images)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "make-dataset":
        return make_dataset(argv[1:])
    return train(argv)


main.prog = "python -m train.unet"
