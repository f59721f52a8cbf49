"""``python -m train.sfsnet``: train SfSNet with a shading residue (seed 002) and relight with it.

    python -m train.sfsnet                                   # edge preset, synthetic faces, CPU or GPU
    python -m train.sfsnet --syn_data DIR --epochs 100 --lr 0.0002 --batch_size 8 --read_first 10000 \\
        --log_dir runs/sfsnet/exp4 --details 'residue, seed widths' --preset seed
    python -m train.sfsnet make-dataset --out data/sfsnet     # synthetic faces in SfSNet's layout
    python -m train.sfsnet interpolate --model runs/sfsnet --input face.png --out strip.png

The seed's options work as written (``--batch_size``, ``--wt_decay``, ``--no_cuda``, ``--read_first``,
``--details``, ``--log_dir``, ``--load_model``, ``--syn_data``), as do their dashed forms. A run folder
(``--log_dir``/``--out``) receives best.ckpt and last.ckpt (the checkpoint contract), details.txt,
metrics.csv, loss_curve.png, and at the end metrics.json with held-out normal angular error, albedo
and SH errors, reconstruction PSNR and relit-image PSNR, test_grid.png and interpolation.png.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.core.cli import (ArgumentParser, batch_samples, bounded_float, bounded_int, budget_minutes, image_size,
                              learning_rate, loss_weight, open_fraction, random_seed)
from runtime.core.errors import UserError
from runtime.core.lighting import sh_light_path as light_sequence

from ..io import check_run_folder, clear_run_folder
from ..trainer import add_hardware_options, build_trainer, checkpoint_callbacks, quiet_lightning

log = logging.getLogger("train.sfsnet")

RUN_FILES = ("best.ckpt", "last.ckpt", "metrics.csv", "hparams.yaml", "metrics.json", "loss_curve.png",
             "test_grid.png", "interpolation.png", "details.txt")
SYNTHETIC_SEEDS = {"train": 0, "val": 10_000_000, "test": 20_000_000}


def _scene_options(group, prefix: str = "") -> None:
    group.add_argument("--size", type=image_size, default="128", metavar="N|HxW",
                       help=f"{prefix}image size (SfSNet works at 128x128)")
    group.add_argument("--train-samples", type=bounded_int(1, 1_000_000), default=1000, help=f"{prefix}training scenes")
    group.add_argument("--val-samples", type=bounded_int(1, 1_000_000), default=64, help=f"{prefix}validation scenes")
    group.add_argument("--test-samples", type=bounded_int(1, 1_000_000), default=64,
                       help=f"{prefix}held-out test scenes")


def build_parser() -> ArgumentParser:
    from ..models import list_models

    presets = [name.split("_", 1)[1] for name in list_models("sfsnet")]
    p = ArgumentParser(prog="python -m train.sfsnet", description=__doc__.replace("``", ""),
                       epilog="Subcommands: make-dataset, interpolate, evaluate, real-eval (each has --help).")
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=presets, default="edge",
                   help="'seed' has SfSNet's widths (5.0M parameters), 'edge' is narrow for video, 'test' is tiny")
    g.add_argument("--no-residue", action="store_true", help="plain SfSNet: no shading-residue branch")
    g.add_argument("--load_model", "--load-model", metavar="CKPT", default=None,
                   help="start from the weights of this checkpoint or run folder (same preset)")
    g = p.add_argument_group("data")
    g.add_argument("--syn_data", "--syn-data", "--data", dest="data", default="synthetic",
                   metavar="synthetic|people|DIR",
                   help="'synthetic' renders height-field faces in memory; 'people' renders people on a real face "
                        "mesh (head, hair, body, glasses, a person mask; needs the faces extra); otherwise a folder "
                        "in SfSNet's layout (train.csv, test.csv)")
    _scene_options(g, "synthetic ")
    g.add_argument("--read_first", "--read-first", type=bounded_int(-1, 1_000_000_000), default=-1, metavar="N",
                   help="use N rows of the dataset, drawn at random with seed 100 (-1: all)")
    g.add_argument("--val-fraction", type=open_fraction, default=0.05,
                   help="share of a folder's training rows held out for validation")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=bounded_int(1, 1_000_000), default=10, help="epochs to train")
    g.add_argument("--max-minutes", type=budget_minutes, default=None, help="stop training after this many minutes")
    g.add_argument("--batch_size", "--batch-size", type=batch_samples, default=8, help="input batch size for training")
    g.add_argument("--lr", type=learning_rate, default=1e-3, help="Adam learning rate (warm-up, then cosine decay)")
    g.add_argument("--wt_decay", "--wt-decay", "--weight-decay", type=bounded_float(0.0, 10.0), default=5e-4,
                   help="Adam weight decay")
    for name, default, what in (("recon", 0.5, "L1 reconstruction"), ("normal", 0.5, "L1 normal"),
                                ("albedo", 0.5, "L1 albedo"), ("sh", 1.0, "MSE SH (SfSNet uses 0.1)"),
                                ("residue", 0.5, "L1 residue, where the data has a true residue (synthetic data; "
                                                 "the seed has none)"),
                                ("mask", 0.5, "binary cross-entropy person mask (models with a mask, people data)")):
        g.add_argument(f"--{name}-weight", type=loss_weight, default=default, help=f"weight of the {what} loss")
    g.add_argument("--seed", type=random_seed, default=1, metavar="S", help="random seed")
    g = p.add_argument_group("hardware (Lightning)")
    add_hardware_options(g)
    g.add_argument("--no_cuda", "--no-cuda", action="store_true", help="train on the CPU even when a GPU is present")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="train in the NHWC memory format (faster on CPUs and tensor cores)")
    g = p.add_argument_group("output")
    g.add_argument("--log_dir", "--log-dir", "--out", dest="out", type=Path, default=Path("runs/sfsnet"), metavar="DIR",
                   help="run folder: checkpoints, logs, figures")
    g.add_argument("--details", default=None, metavar="TEXT", help="what this run is for; written to DIR/details.txt")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in the run folder")
    g.add_argument("--resume", action="store_true", help="continue the run in the run folder from its last.ckpt")
    g.add_argument("--quiet", action="store_true", help="no progress bars or progress messages; results and errors only")
    return p


# --- data ------------------------------------------------------------------------------------------------


def render_splits(size, counts: dict[str, int], seed: int, workers: int | None = None, progress: bool = True,
                  kind: str = "synthetic"):
    """Render the splits: ``synthetic`` height-field faces or ``people`` on the face mesh."""
    from .data import FaceRenderConfig, render_config_dict, render_face_dataset

    render = render_face_dataset
    if kind == "people":
        from .people import render_person_dataset as render
    cfg = FaceRenderConfig(height=size[0], width=size[1])
    splits = {split: render(count, SYNTHETIC_SEEDS[split] + seed * count, cfg, workers, progress)
              for split, count in counts.items()}
    source = "synthetic people on a face mesh" if kind == "people" else "synthetic faces"
    return splits, {"source": source, "render": render_config_dict(cfg), "seed": seed, "samples": counts}


def _prepare_data(args) -> tuple[dict, dict]:
    from .data import read_sfsnet_layout

    if args.data in ("synthetic", "people"):
        counts = {"train": args.train_samples, "val": args.val_samples, "test": args.test_samples}
        if args.read_first > 0:
            counts["train"] = min(counts["train"], args.read_first)
        log.info("rendering %d synthetic %s scenes of %dx%d", sum(counts.values()),
                 "people" if args.data == "people" else "face", *args.size)
        splits, meta = render_splits(args.size, counts, args.seed, progress=not args.quiet, kind=args.data)
    else:
        root = Path(args.data)
        train = read_sfsnet_layout(root, "train", args.read_first)
        if train is None:
            raise UserError(f"{root}: no training data (need train.csv or a train/ folder in SfSNet's layout)")
        shape = train["image"].shape[1:3]
        test = read_sfsnet_layout(root, "test", size=shape)
        n = len(train["image"])
        n_val = max(1, int(round(n * args.val_fraction)))
        if n - n_val < 1:
            raise UserError(f"{root}: {n} training row(s) are too few to hold out validation data")
        order = np.random.default_rng(args.seed).permutation(n)
        splits = {"train": {k: v[order[n_val:]] for k, v in train.items()},
                  "val": {k: v[order[:n_val]] for k, v in train.items()}}
        splits["test"] = test if test is not None else splits["val"]
        meta = {"source": str(root.resolve()), "read_first": args.read_first, "test_from": "test" if test else "val"}
    meta.update(image_size=list(splits["train"]["image"].shape[1:3]),
                samples={k: int(len(v["image"])) for k, v in splits.items()})
    return splits, meta


# --- initial weights -------------------------------------------------------------------------------------


def _load_initial_weights(module, path: str) -> None:
    from ..checkpoint import load_checkpoint

    model, meta = load_checkpoint(path, family="sfsnet", purpose="--load_model")
    try:
        module.model.load_state_dict(model.state_dict())
    except RuntimeError:
        raise UserError(f"--load_model {path} is {meta['name']} with other sizes than sfsnet_{module.model.preset}") from None


def train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_run_folder(args.out, RUN_FILES, overwrite=args.overwrite, resume=args.resume, option="--log_dir")
    if args.data not in ("synthetic", "people") and not Path(args.data).is_dir():
        raise UserError(f"--syn_data {args.data}: no such folder")
    if args.no_cuda:
        args.accelerator = "cpu"

    import lightning as L

    from .evaluate import finish_run
    from .module import SfSNetData, SfSNetModule

    quiet_lightning(args.quiet)
    L.seed_everything(args.seed, verbose=False)
    trainer = build_trainer(args, args.out, checkpoint_callbacks(args.out, "val/loss"), max_epochs=args.epochs,
                            quiet=args.quiet, max_minutes=args.max_minutes)
    start = time.perf_counter()
    splits, data_meta = _prepare_data(args)
    if len(splits["train"]["image"]) < args.batch_size:
        raise UserError(f"--batch_size {args.batch_size} exceeds the {len(splits['train']['image'])} training images")
    data = SfSNetData(splits, data_meta, batch_size=args.batch_size, workers=args.workers)
    weights = {k: getattr(args, f"{k}_weight") for k in ("recon", "normal", "albedo", "sh", "residue", "mask")}
    module = SfSNetModule(model_name=f"sfsnet_{args.preset}", model_config={"residue": not args.no_residue},
                          lr=args.lr, weight_decay=args.wt_decay, loss_weights=weights, data_summary=data_meta,
                          channels_last=args.channels_last, epochs=args.epochs)
    if args.load_model:
        _load_initial_weights(module, args.load_model)
    if not args.resume:
        clear_run_folder(args.out, RUN_FILES)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.details:
        from runtime.core.io import atomic_path

        with atomic_path(args.out / "details.txt") as tmp:
            tmp.write_text(args.details.rstrip() + "\n")
    trainer.fit(module, datamodule=data, ckpt_path=args.out / "last.ckpt" if args.resume else None)
    train_seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt
    if trainer.is_global_zero:
        if not (args.out / "best.ckpt").is_file():
            raise UserError("training stopped before the first validation, so no checkpoint was written")
        finish_run(args.out, splits["test"], extra={
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "train_seconds": round(train_seconds, 1), "epochs_completed": trainer.current_epoch})
    return 0


# --- subcommands -----------------------------------------------------------------------------------------


def build_dataset_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.sfsnet make-dataset",
                       description="Render synthetic faces under SH light and write them in SfSNet's layout "
                                   "(train.csv, test.csv, train/ and test/ folders) for --syn_data.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder to create")
    p.add_argument("--size", type=image_size, default="128", metavar="N|HxW", help="image size")
    p.add_argument("--train-samples", type=bounded_int(1, 1_000_000), default=1000, help="training scenes")
    p.add_argument("--test-samples", type=bounded_int(1, 1_000_000), default=64, help="test scenes")
    p.add_argument("--seed", type=random_seed, default=0, help="seed offset of the scenes")
    p.add_argument("--workers", type=bounded_int(1, 1024), default=None, help="render processes (default: all cores)")
    return p


def make_dataset(argv: Sequence[str] | None) -> int:
    from runtime.core.io import atomic_dir

    from .data import write_sfsnet_layout

    args = build_dataset_parser().parse_args(argv)
    if args.out.exists():
        raise UserError(f"{args.out} already exists; choose a new folder")
    start = time.perf_counter()
    splits, _ = render_splits(args.size, {"train": args.train_samples, "test": args.test_samples}, args.seed,
                              args.workers)
    with atomic_dir(args.out) as tmp:
        write_sfsnet_layout(tmp, splits)
    print(f"wrote {args.train_samples} + {args.test_samples} scenes of {args.size[0]}x{args.size[1]} to {args.out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def build_interpolate_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.sfsnet interpolate",
                       description="Relight one image along a sequence of SH lights and save the frames as a strip "
                                   "(the seed's interpolate.py).")
    p.add_argument("--model", required=True, metavar="CKPT", help="sfsnet checkpoint or run folder")
    p.add_argument("--input", required=True, metavar="IMAGE|DIR", help="image file (PNG, JPEG, ...) or a folder of them")
    p.add_argument("--out", type=Path, required=True, metavar="PNG|DIR",
                   help="strip to write (a folder, receiving NAME_interpolation.png, when --input is a folder)")
    p.add_argument("--lights", default="sweep",
                   help="'sweep' (key light from left to right), 'orbit', or SH presets to interpolate, e.g. left,front,right")
    p.add_argument("--steps", type=bounded_int(1, 100), default=7, help="relit frames in the strip")
    p.add_argument("--size", type=image_size, default=None, metavar="N|HxW",
                   help="resize the input first (default: the training size stored in the checkpoint)")
    p.add_argument("--linear", action="store_true", help="the file stores linear values (default: sRGB, linearised)")
    return p


def interpolate(argv: Sequence[str] | None) -> int:
    import cv2

    from ..checkpoint import load_checkpoint
    from ..data.images import IMAGE_EXTENSIONS, read_image
    from .evaluate import save_interpolation

    args = build_interpolate_parser().parse_args(argv)
    model, meta = load_checkpoint(args.model, family="sfsnet", purpose="interpolate")
    source = Path(args.input)
    if source.is_dir():  # the seed's interpolate.py takes a folder: one strip per image
        inputs = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not inputs:
            raise UserError(f"--input {source}: no images in the folder")
        if args.out.exists() and not args.out.is_dir():
            raise UserError(f"--out {args.out}: must be a folder when --input is a folder")
        args.out.mkdir(parents=True, exist_ok=True)
        targets = [args.out / f"{p.stem}_interpolation.png" for p in inputs]
    else:
        inputs, targets = [source], [args.out]
    lights, labels = light_sequence(args.lights, args.steps)
    for path, target in zip(inputs, targets):
        image = read_image(path)
        size = args.size or tuple(meta.get("data", {}).get("image_size") or image.shape[:2])
        if image.shape[:2] != tuple(size):
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        if not args.linear:
            image = image**2.2
        save_interpolation(target, model, image, lights, labels)
        print(f"wrote {target}: {args.steps} lights, {size[0]}x{size[1]}")
    return 0


def build_evaluate_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.sfsnet evaluate",
                       description="Held-out figures of an sfsnet checkpoint or a relight_edge chain on the synthetic "
                                   "test split (the scenes training holds out: same seeds), at any size.")
    p.add_argument("--model", required=True, metavar="CKPT", help="an sfsnet checkpoint or run folder, or a "
                                                                  "relight_edge chain checkpoint")
    p.add_argument("--syn_data", "--syn-data", "--data", dest="data", choices=["synthetic", "people"],
                   default="synthetic", help="which renderer's test split")
    p.add_argument("--size", type=image_size, default="128", metavar="N|HxW", help="image size of the scenes")
    p.add_argument("--test-samples", type=bounded_int(1, 100_000), default=64, help="held-out scenes")
    p.add_argument("--seed", type=random_seed, default=1, metavar="S", help="the training run's --seed")
    p.add_argument("--out", type=Path, default=None, metavar="JSON", help="also write the figures here")
    return p


def evaluate_command(argv: Sequence[str] | None) -> int:
    from runtime.core.io import write_json

    from ..checkpoint import load_checkpoint
    from .evaluate import evaluate, evaluate_relight_edge
    from .realeval import Relighter

    args = build_evaluate_parser().parse_args(argv)
    model, meta = load_checkpoint(args.model, purpose="evaluate")
    if meta["family"] not in ("sfsnet", "relight"):
        raise UserError(f"--model {args.model} is {meta['name']}; evaluate takes an sfsnet checkpoint or a "
                        "relight_edge chain")
    chain = Relighter(model).chain  # refuses a relighting chain other than relight_edge
    counts = {"test": args.test_samples}
    splits, _ = render_splits(args.size, counts, args.seed, progress=True, kind=args.data)
    if chain:
        figures = evaluate_relight_edge(model, splits["test"])
    else:
        figures, baseline, _ = evaluate(model, splits["test"])
        figures = {**figures, **{f"baseline_{k}": v for k, v in baseline.items()}}
    report = {"model": meta["name"], "checkpoint": str(args.model), "data": args.data, "size": list(args.size),
              "test_samples": args.test_samples, "figures": figures}
    if args.out:
        write_json(args.out, report)
    print(f"{meta['name']} on {args.test_samples} held-out {args.data} scenes of {args.size[0]}x{args.size[1]}: "
          + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    return 0


def build_real_eval_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.sfsnet real-eval",
                       description="Score a decomposition on real portraits against MediaPipe's face mesh: normal "
                                   "error on the face, directionality of a left and a right light, reconstruction, "
                                   "person-mask IoU; writes real_eval.json and real_eval.png. Needs the faces extra.")
    p.add_argument("--model", required=True, metavar="CKPT",
                   help="an sfsnet checkpoint or run folder (relit as SfSNet does), or a relight_edge chain checkpoint")
    p.add_argument("--input", default="astronaut", metavar="IMAGE|DIR|NAME,...",
                   help="portrait photographs (sRGB): files, folders of them, or scikit-image's 'astronaut' and "
                        "'camera' (the cameraman, grey), comma-separated")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for real_eval.json and real_eval.png")
    p.add_argument("--max-side", type=bounded_int(64, 8192), default=640,
                   help="photographs larger than this are scaled down first (pixels, longer side)")
    return p


_BUNDLED_PORTRAITS = ("astronaut", "camera")  # scikit-image's photographs with a face in them


def _real_photos(spec: str) -> list[tuple[str, np.ndarray]]:
    """The photographs ``--input`` names: a comma list of files, folders and scikit-image's portraits."""
    from ..data.images import IMAGE_EXTENSIONS, read_image

    photos = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        if item in _BUNDLED_PORTRAITS:
            from skimage import data

            pixels = getattr(data, item)()
            pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels[..., :3]
            photos.append((item, pixels.astype(np.float32) / 255.0))
            continue
        source = Path(item)
        if source.is_dir():
            paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not paths:
                raise UserError(f"--input {source}: no images in the folder")
        elif source.is_file():
            paths = [source]
        else:
            raise UserError(f"--input {item}: no such file or folder")
        photos += [(p.name, read_image(p)) for p in paths]
    if not photos:
        raise UserError("--input names no photograph")
    return photos


def real_eval(argv: Sequence[str] | None) -> int:
    from runtime.core.io import write_json

    from ..checkpoint import load_checkpoint
    from .realeval import evaluate_real, find_faces, save_real_strip

    args = build_real_eval_parser().parse_args(argv)
    model, meta = load_checkpoint(args.model, purpose="real-eval")
    if meta["family"] not in ("sfsnet", "relight"):
        raise UserError(f"--model {args.model} is a {meta['family']!r} model; real-eval takes sfsnet or relight_edge")
    faces = find_faces(_real_photos(args.input), args.max_side)
    means, rows, panels = evaluate_real(model, faces)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "real_eval.json", {"model": meta["name"], "checkpoint": str(args.model), "input": args.input,
                                             "mean": means, "faces": rows})
    title = (f"{meta['name']}: normals {means['normal_deg']:.1f} deg (mesh), flip {means['flip']:.2f}x, "
             f"reconstruction {means['recon_psnr']:.1f} dB")
    save_real_strip(args.out / "real_eval.png", panels, title=title)
    line = (f"{meta['name']} on {means['faces']} real face(s): normal error {means['normal_deg']:.2f} deg against the "
            f"face mesh (flat normals {means['flat_normal_deg']:.2f}), left/right brightness flip "
            f"{means['flip']:.2f}x, reconstruction {means['recon_psnr']:.2f} dB "
            f"(albedo x SH shading {means['decomposition_psnr']:.2f} dB)")
    if "mask_iou" in means:
        line += f", person mask IoU {means['mask_iou']:.3f}"
    print(line)
    print(f"wrote {args.out / 'real_eval.json'} and {args.out / 'real_eval.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"make-dataset": make_dataset, "interpolate": interpolate, "evaluate": evaluate_command,
                "real-eval": real_eval}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    return train(argv)


main.prog = "python -m train.sfsnet"
