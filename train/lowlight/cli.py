"""``python -m train.lowlight``: low-light enhancement (seed 003): train, valid, bench, video-bench, infer,
make-dataset.

    python -m train.lowlight train                                 # edge preset on synthetic pairs
    python -m train.lowlight train --preset seed --data data/ --devices 2
    python -m train.lowlight bench --checkpoint runs/lowlight/best.ckpt --data data/
    python -m train.lowlight video-bench --checkpoint runs/lowlight/best.ckpt --out video-bench/
    python -m train.lowlight infer --checkpoint runs/lowlight/best.ckpt --input photos/ --out enhanced/
    python -m train.lowlight make-dataset --out data/synthetic-lowlight

--data is "synthetic" (pairs made from clean photos: scikit-image's, or --photos DIR) or a folder in
seed 003's layout (1_train, 2_valid, 3_bench, 4_infer / <subset> / low, high) or LOL-v1's
(our485, eval15). Every option of the seed's get_hparams() is an option here, with the seed's name
accepted too (--max_epochs as well as --max-epochs).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from runtime.core.cli import (ArgumentParser, batch_samples, bounded_float, bounded_int, budget_minutes, image_side,
                              learning_rate, loss_weight, open_fraction, positive_int, random_seed)
from runtime.core.errors import UserError

from ..trainer import add_hardware_options, build_trainer, checkpoint_callbacks, quiet_lightning

COMMANDS = ("train", "valid", "bench", "video-bench", "infer", "make-dataset")


def _options(*names: str) -> list[str]:
    """Dashed option names plus the seed's underscore spelling, without duplicates."""
    out = []
    for name in names:
        for spelling in (name, "--" + name[2:].replace("-", "_")):
            if spelling not in out:
                out.append(spelling)
    return out


def build_train_parser() -> ArgumentParser:
    from .data import DEGRADATIONS
    from .model import LOWLIGHT_PRESETS

    presets = [name for name, (cls, _) in LOWLIGHT_PRESETS.items() if not getattr(cls, "benchmark_only", False)]
    p = ArgumentParser(prog="python -m train.lowlight train", description=__doc__.replace("``", ""))
    g = p.add_argument_group("model (seed 003's options)")
    g.add_argument("--preset", choices=presets, default="edge",
                   help="'seed' is IllRecNet, 'edge' the real-time variant (second generation), 'edge_v1' the first "
                        "generation, 'test' / 'edgetest' / 'edgetest_v1' tiny ones")
    g.add_argument(*_options("--embed-dim"), type=bounded_int(1, 4096), default=None,
                   help="token width (preset's if unset)")
    g.add_argument(*_options("--num-heads"), type=bounded_int(1, 256), default=None,
                   help="attention heads (preset's if unset)")
    g.add_argument(*_options("--mlp-ratio"), type=bounded_float(0.0, 64.0, low_open=True), default=None,
                   help="MLP expansion (preset's if unset)")
    g.add_argument(*_options("--num-resolution"), type=bounded_int(1, 16), default=None,
                   help="decoder levels, IllRecNet only (preset's if unset)")
    g.add_argument(*_options("--dropout-ratio"), type=bounded_float(0.0, 1.0, high_open=True), default=None,
                   help="dropout (preset's if unset)")
    g.add_argument("--separation", choices=["frozen", "trainable", "two-stage"], default="frozen",
                   help="Gaussian separation kernel frozen, trainable, or the seed's two runs (frozen, then "
                        "trainable starting from the first run's best weights)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", metavar="synthetic|DIR", help="pairs to train on")
    g.add_argument(*_options("--train-data-path"), default=None, metavar="DIR",
                   help="training pairs, when they are not under --data")
    g.add_argument(*_options("--valid-data-path"), default=None, metavar="DIR",
                   help="validation pairs, when they are not under --data")
    g.add_argument("--photos", default=None, metavar="DIR", help="clean photos for synthetic pairs (default: scikit-image's)")
    g.add_argument("--degradation", choices=list(DEGRADATIONS), default="camera",
                   help="how synthetic pairs are made: 'camera' (exposures from very dark to normal, sensor noise "
                        "before the tone curve, white-balance error, JPEG / H.264 compression; normal exposures are "
                        "to be left alone) or 'classic' (the first generation's: darker only, no compression)")
    g.add_argument(*_options("--image-size"), type=image_side, default=128, help="side of the square training crops")
    g.add_argument("--train-samples", type=bounded_int(1, 1_000_000), default=2400,
                   help="synthetic training pairs per epoch")
    g.add_argument("--valid-samples", type=bounded_int(1, 1_000_000), default=64, help="synthetic validation pairs")
    g = p.add_argument_group("optimisation")
    g.add_argument(*_options("--max-epochs"), "--epochs", dest="max_epochs",
                   type=bounded_int(1, 1_000_000), default=15,
                   help="maximum epochs")
    g.add_argument(*_options("--batch-size"), type=batch_samples, default=8, help="pairs per batch (per device)")
    g.add_argument("--lr", type=learning_rate, default=1e-3, help="AdamW peak learning rate")
    g.add_argument("--betas", type=open_fraction, nargs=2, default=(0.9, 0.999), metavar=("B1", "B2"),
                   help="AdamW betas")
    g.add_argument(*_options("--weight-decay"), type=bounded_float(0.0, 10.0), default=1e-4, help="AdamW weight decay")
    g.add_argument(*_options("--warmup-epochs"), type=bounded_float(0.0, 1_000_000.0), default=1.0,
                   help="linear warm-up before the cosine decay")
    g.add_argument("--patience", type=bounded_int(1, 1_000_000), default=6,
                   help="early stopping: epochs without a better validation total loss")
    g.add_argument("--mae-weight", type=loss_weight, default=1.0, help="weight of the MAE term")
    g.add_argument("--mse-weight", type=loss_weight, default=1.0, help="weight of the MSE term")
    g.add_argument("--ssim-weight", type=loss_weight, default=0.5,
                   help="weight of the 1 - SSIM term (SSIM punishes leftover noise and compression blocks)")
    g.add_argument("--temporal-weight", type=loss_weight, default=0.0,
                   help="weight of the temporal consistency term for video (StableLLVE-style warped pairs)")
    g.add_argument("--seed", type=random_seed, default=0, help="seed for weights, crops and degradations")
    g.add_argument("--max-minutes", type=budget_minutes, default=None, help="stop each run after this many minutes")
    g = p.add_argument_group("hardware (Lightning)")
    # synthetic pairs are made on the fly (noise, tone curve, JPEG / H.264): two processes keep up with the model
    add_hardware_options(g, workers=min(2, os.cpu_count() or 1))
    g = p.add_argument_group("output")
    g.add_argument(*_options("--log-dir"), type=Path, default=Path("runs"), metavar="DIR", help="where runs go")
    g.add_argument(*_options("--experiment-name"), default="lowlight", help="run folder name under --log-dir")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run of that name")
    g.add_argument("--quiet", action="store_true", help="no progress bars or progress messages; results and errors only")
    return p


def _eval_parser(command: str, description: str) -> ArgumentParser:
    p = ArgumentParser(prog=f"python -m train.lowlight {command}", description=description)
    p.add_argument(*_options("--checkpoint", "--checkpoint-path"), required=True, metavar="CKPT",
                   help="a lowlight checkpoint, or a run folder (its best.ckpt)")
    p.add_argument("--data", default="synthetic", metavar="synthetic|DIR",
                   help="'synthetic' uses held-out pairs made from photos never used in training")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the synthetic held-out pairs")
    return p


def build_bench_parser() -> ArgumentParser:
    p = _eval_parser("bench", "PSNR, SSIM and LPIPS of a checkpoint and of classical baselines on the benchmark pairs.")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    from .data import DEGRADATIONS

    p.add_argument("--degradation", choices=[*DEGRADATIONS, "independent"], default=None,
                   help="how the synthetic held-out pairs are made: 'camera' or 'classic' (the training "
                        "degradations; default: the one the checkpoint was trained on) or 'independent' (raw Bayer "
                        "noise, MPEG-4 Part 2; written apart from training, for evaluation only); --data synthetic only")
    return p


def build_valid_parser() -> ArgumentParser:
    p = _eval_parser("valid", "Validation losses and metrics of a checkpoint on the validation pairs.")
    p.add_argument("--image-size", type=image_side, default=128, help="side of the validation centre crops")
    return p


def build_infer_parser() -> ArgumentParser:
    p = _eval_parser("infer", "Enhance images and write them beside side-by-side comparisons.")
    p.add_argument("--input", default=None, metavar="PATH",
                   help="an image or a folder of images (default: the 4_infer pairs under --data)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for enhanced/ and compare/")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many images")
    return p


def build_dataset_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.lowlight make-dataset",
                       description="Write synthetic low-light pairs in seed 003's layout (DIR/1_train/synthetic/low ...).")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder to create")
    p.add_argument("--photos", default=None, metavar="DIR", help="clean photos (default: scikit-image's)")
    p.add_argument("--image-size", type=image_side, default=256, help="side of the square crops")
    p.add_argument("--counts", type=bounded_int(1, 1_000_000), nargs=4, default=(200, 24, 48, 8),
                   metavar=("TRAIN", "VALID", "BENCH", "INFER"), help="pairs per stage")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of crops and degradations")
    return p


# --------------------------------------------------------------------------------------------- train


def _model_overrides(args) -> dict:
    from dataclasses import fields

    from .model import LOWLIGHT_PRESETS

    keys = ("embed_dim", "num_heads", "mlp_ratio", "num_resolution", "dropout_ratio")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    cls, config = LOWLIGHT_PRESETS[args.preset]
    known = {f.name for f in fields(config)}
    for key in overrides:
        if key not in known:
            raise UserError(f"--{key.replace('_', '-')} does not apply to the {args.preset!r} preset ({cls.__name__})")
    return overrides


def train(argv: Sequence[str]) -> int:
    args = build_train_parser().parse_args(argv)
    out = args.log_dir / args.experiment_name
    if (out / "best.ckpt").exists() and not args.overwrite:
        raise UserError(f"{out} already holds a run; pass --overwrite or another --experiment-name")
    data_root = args.data
    if args.train_data_path or args.valid_data_path:
        data_root = _combined_root(args)
    elif data_root != "synthetic" and not Path(data_root).exists():
        raise UserError(f"data path does not exist: {data_root}")

    import lightning as L

    from .module import LowLightData, LowLightModule

    quiet_lightning(args.quiet)
    L.seed_everything(args.seed, verbose=False)
    overrides = _model_overrides(args)
    start = time.perf_counter()
    data = LowLightData(data_root, args.image_size, args.batch_size, args.train_samples, args.valid_samples,
                        args.workers, args.seed, args.photos, args.degradation)
    if len(data.train_set) < args.batch_size:
        raise UserError(f"--batch-size {args.batch_size} exceeds the {len(data.train_set)} training pairs")
    stages = ["frozen", "trainable"] if args.separation == "two-stage" else [args.separation]
    if out.exists() and args.overwrite:
        shutil.rmtree(out)
    weights = None
    for i, stage in enumerate(stages):
        folder = out / stage if len(stages) > 1 else out
        try:
            module = LowLightModule(
                model_name=f"lowlight_{args.preset}",
                model_config={**overrides, "trainable_separation": stage == "trainable"},
                lr=args.lr, weight_decay=args.weight_decay, betas=tuple(args.betas), warmup_epochs=args.warmup_epochs,
                mae_weight=args.mae_weight, mse_weight=args.mse_weight, ssim_weight=args.ssim_weight,
                temporal_weight=args.temporal_weight, data_summary={**data.summary, "separation": args.separation},
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if args.mae_weight + args.mse_weight + args.ssim_weight == 0:
            raise UserError("at least one of --mae-weight, --mse-weight, --ssim-weight must be positive")
        if weights is not None:
            module.model.load_state_dict(weights)
        trainer = _fit(args, module, data, folder)
        if trainer.interrupted:
            raise KeyboardInterrupt
        if not (folder / "best.ckpt").is_file():
            raise UserError("training stopped before the first validation, so no checkpoint was written")
        if i + 1 < len(stages):  # the next stage starts from this one's best weights
            from ..checkpoint import load_checkpoint

            weights = load_checkpoint(folder / "best.ckpt")[0].state_dict()
    if len(stages) > 1:
        from runtime.core.io import atomic_path

        with atomic_path(out / "best.ckpt") as tmp:
            shutil.copyfile(out / stages[-1] / "best.ckpt", tmp)
    seconds = time.perf_counter() - start
    print(f"trained in {seconds / 60:.1f} min")
    bench_data = _bench_data(args)
    if bench_data is not None:
        from .evaluate import bench_checkpoint, write_samples

        bench_checkpoint(out / "best.ckpt", bench_data, seed=args.seed, out=out / "bench.json",
                         extra={"train_seconds": round(seconds, 1)})
        write_samples(out / "best.ckpt", bench_data, out / "samples", limit=6, seed=args.seed)
    print(f"run folder {out}: best.ckpt, last.ckpt, metrics.csv, loss_curve.png"
          + (", bench.json, samples/" if bench_data is not None else ""))
    return 0


def _bench_data(args) -> str | None:
    """Where the post-training benchmark runs: held-out synthetic pairs, or the --data folder's 3_bench pairs."""
    from runtime.core.errors import DatasetError

    from .data import find_pairs

    if args.data == "synthetic":
        if args.photos:
            print("no held-out pairs for --photos: run 'bench --data DIR' on pairs the model has not seen")
            return None
        return "synthetic"
    try:
        find_pairs(args.data, "bench")
    except DatasetError as exc:
        print(f"no benchmark after training: {exc}")
        return None
    return args.data


def _combined_root(args) -> str:
    """A seed-layout root holding the given train and valid folders (as symlinks in a temporary folder)."""
    import atexit
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="edgelight-lowlight-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # removes the links, never their targets
    for stage, given in (("1_train", args.train_data_path), ("2_valid", args.valid_data_path)):
        source = Path(given or Path(args.data) / stage)
        if not source.exists():
            raise UserError(f"data path does not exist: {source}")
        (root / stage).symlink_to(source.resolve(), target_is_directory=True)
    return str(root)


def _fit(args, module, data, folder: Path):
    from lightning.pytorch.callbacks import EarlyStopping

    callbacks = [*checkpoint_callbacks(folder, "valid/3_total"),
                 EarlyStopping(monitor="valid/3_total", mode="min", patience=args.patience)]
    trainer = build_trainer(args, folder, callbacks, max_epochs=args.max_epochs, quiet=args.quiet,
                            max_minutes=args.max_minutes)
    folder.mkdir(parents=True, exist_ok=True)
    trainer.fit(module, datamodule=data)
    from ..plots import LOWLIGHT_CURVES, save_loss_curve

    if (folder / "metrics.csv").exists():
        save_loss_curve(folder / "metrics.csv", folder / "loss_curve.png", curves=LOWLIGHT_CURVES)
    return trainer


# ------------------------------------------------------------------------------- valid / bench / infer


def bench(argv: Sequence[str]) -> int:
    from .evaluate import bench_checkpoint

    args = build_bench_parser().parse_args(argv)
    if args.degradation is not None and args.data != "synthetic":
        raise UserError("--degradation applies to --data synthetic; the pairs under --data are used as they are")
    bench_checkpoint(args.checkpoint, args.data, args.device, args.seed, args.out, degradation=args.degradation)
    return 0


def video_bench(argv: Sequence[str]) -> int:
    from .video import video_bench as run_video_bench

    return run_video_bench(argv)


def valid(argv: Sequence[str]) -> int:
    from .evaluate import validate_checkpoint

    args = build_valid_parser().parse_args(argv)
    print(json.dumps(validate_checkpoint(args.checkpoint, args.data, args.device, args.seed, args.image_size), indent=2))
    return 0


def infer(argv: Sequence[str]) -> int:
    from ..data.images import IMAGE_EXTENSIONS
    from .evaluate import write_samples

    args = build_infer_parser().parse_args(argv)
    inputs = None
    if args.input:
        source = Path(args.input)
        if not source.exists():
            raise UserError(f"input does not exist: {source}")
        inputs = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not inputs:
            raise UserError(f"{source}: no image files")
    count = write_samples(args.checkpoint, args.data, args.out, args.limit, args.seed, inputs, args.device)
    print(f"wrote {count} enhanced images to {args.out / 'enhanced'} and comparisons to {args.out / 'compare'}")
    return 0


# ------------------------------------------------------------------------------------- make-dataset


def make_dataset(argv: Sequence[str]) -> int:
    import numpy as np
    from tqdm import tqdm

    from runtime.core.io import atomic_dir

    from ..data.images import write_image
    from .data import STAGES, auto_expose, degrade, folder_photos, photo_split, random_crop

    args = build_dataset_parser().parse_args(argv)
    if args.out.exists():
        raise UserError(f"{args.out} already exists; choose a new folder")
    if args.photos:
        photos = folder_photos(args.photos)
        if len(photos) < 3:
            raise UserError(f"{args.photos}: need at least 3 photos (training, validation and held-out ones)")
        k = max(1, len(photos) // 5)
        sources = {"train": photos[: -2 * k], "valid": photos[-2 * k : -k], "bench": photos[-k:], "infer": photos[-k:]}
    else:
        sources = {"train": photo_split("train"), "valid": photo_split("valid"), "bench": photo_split("test"),
                   "infer": photo_split("test")}
    counts = dict(zip(("train", "valid", "bench", "infer"), args.counts))
    with atomic_dir(args.out) as tmp:
        for s, (stage, count) in enumerate(counts.items()):
            rng = np.random.default_rng((args.seed, s))
            for i in tqdm(range(count), desc=STAGES[stage], leave=False):
                photo = sources[stage][int(rng.integers(len(sources[stage])))]
                (high,) = random_crop([photo], args.image_size, rng)
                high = auto_expose(high, rng)
                low = degrade(high, rng)
                write_image(tmp / STAGES[stage] / "synthetic" / "low" / f"{i:04d}.png", low)
                write_image(tmp / STAGES[stage] / "synthetic" / "high" / f"{i:04d}.png", high)
    print(f"wrote {sum(counts.values())} pairs to {args.out} "
          f"({', '.join(f'{STAGES[k]}: {v}' for k, v in counts.items())})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.replace("``", "") + "\ncommands: " + ", ".join(COMMANDS) + " (python -m train.lowlight COMMAND --help)")
        return 0
    command = argv.pop(0) if argv and not argv[0].startswith("-") else "train"
    handlers = {"train": train, "valid": valid, "bench": bench, "video-bench": video_bench, "infer": infer,
                "make-dataset": make_dataset}
    if command not in handlers:
        raise UserError(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}")
    return handlers[command](argv)


main.prog = "python -m train.lowlight"
