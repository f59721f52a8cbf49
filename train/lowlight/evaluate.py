"""Held-out evaluation of low-light checkpoints: validation figures, the benchmark against classical
baselines (PSNR, SSIM, LPIPS), and enhanced sample images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["BASELINES", "BENCH_PAIRS", "identity", "gamma", "adaptive_gamma", "clahe_l", "load_lowlight", "eval_set",
           "bench_checkpoint", "validate_checkpoint", "write_samples"]

BENCH_PAIRS = 48


# ------------------------------------------------------------------------------------ classical baselines


def identity(image: np.ndarray) -> np.ndarray:
    """The input itself."""
    return image


def gamma(image: np.ndarray, value: float = 2.2) -> np.ndarray:
    """Gamma correction x^(1/value)."""
    return np.clip(image, 0.0, 1.0) ** (1.0 / value)


def adaptive_gamma(image: np.ndarray, target: float = 0.45) -> np.ndarray:
    """Gamma chosen per image so that its mean brightness maps to ``target``."""
    mean = float(np.clip(image.mean(), 1e-4, 0.999))
    return np.clip(image, 0.0, 1.0) ** (np.log(target) / np.log(mean))


def clahe_l(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """OpenCV CLAHE on the L channel of CIELAB (8-bit), colour channels untouched."""
    rgb8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(rgb8, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


BASELINES = {
    "input": identity,
    "gamma 2.2": gamma,
    "adaptive gamma": adaptive_gamma,
    "CLAHE (L channel)": clahe_l,
}


# ----------------------------------------------------------------------------------------- checkpoints


def load_lowlight(path, device: str):
    import torch

    from ..checkpoint import load_checkpoint

    return load_checkpoint(path, map_location=torch.device(device), family="lowlight", purpose="train.lowlight")


def training_degradation(meta: dict) -> str:
    """The synthetic degradation a checkpoint was trained on (``classic`` for checkpoints older than the choice)."""
    return (meta.get("data") or {}).get("degradation", "classic")


def eval_set(data: str, stage: str, seed: int, size: int | None, require_high: bool = True,
             degradation: str = "camera"):
    """The held-out pairs of ``stage``: synthetic ones (``degradation``: a training one of ``DEGRADATIONS``, or
    ``independent``, the evaluation-only one) or those under a data folder."""
    from .data import SPLIT_SEEDS, PairDataset, SyntheticPairs, find_pairs, photo_split

    if data == "synthetic":
        split = "valid" if stage == "valid" else "test"
        length, seed = BENCH_PAIRS if split == "test" else 32, SPLIT_SEEDS[split] + seed
        if degradation == "independent":
            from .independent import IndependentPairs

            return IndependentPairs(photo_split(split), length, size or 256, seed=seed), "synthetic (independent)"
        return SyntheticPairs(photo_split(split), length, size or 256, seed=seed, fixed=True,
                              degradation=degradation), f"synthetic ({degradation})"
    pairs = find_pairs(data, stage, require_high=require_high)
    return PairDataset(pairs, size=size, train=False), str(data)


def _lpips():
    """LPIPS (AlexNet) from torchmetrics, or None with the reason when its weights cannot be had."""
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval(), None
    except (OSError, RuntimeError, ImportError, ModuleNotFoundError) as exc:
        return None, str(getattr(exc, "reason", exc)).splitlines()[0][:80]


def bench_checkpoint(checkpoint, data: str, device: str = "cpu", seed: int = 0, out: Path | None = None,
                     extra: dict | None = None, degradation: str | None = None) -> dict:
    """Benchmark a checkpoint and the classical baselines on the same pairs; print a table, return the rows.

    ``degradation`` makes the synthetic pairs (``eval_set``): ``camera``, ``classic`` or ``independent``;
    None: the one the checkpoint was trained on (``training_degradation``).
    PSNR, SSIM and LPIPS are means over the low-light pairs. Pairs whose target is the input itself
    (``camera`` at normal exposure: to be left alone) are scored apart, as the PSNR of each method's output
    against its input (``well_exposed_psnr``; infinite for the input itself, written as null).
    """
    import math

    import torch
    from tqdm import tqdm

    from ..metrics import image_metrics

    model, meta = load_lowlight(checkpoint, device)
    degradation = degradation or training_degradation(meta)
    dataset, source = eval_set(data, "bench", seed, size=None, degradation=degradation)
    lpips, lpips_reason = _lpips()
    methods = {meta["name"]: None, **BASELINES}
    sums = {name: {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0} for name in methods}
    well_exposed: dict[str, list[float]] = {name: [] for name in methods}
    n = len(dataset)
    with torch.inference_mode():
        for i in tqdm(range(n), desc="bench", leave=False, disable=n < 8):
            item = dataset[i]
            low, high = item["low"][None], item["high"][None]
            normal = torch.equal(item["low"], item["high"])
            low_np = item["low"].numpy().transpose(1, 2, 0)
            for name, fn in methods.items():
                if fn is None:
                    pred = model(low.to(device)).float().cpu().clamp(0, 1)
                else:
                    pred = torch.from_numpy(np.ascontiguousarray(fn(low_np).transpose(2, 0, 1)))[None].float()
                m = image_metrics(pred, high)
                if normal:
                    well_exposed[name].append(m["psnr"])
                    continue
                sums[name]["psnr"] += m["psnr"]
                sums[name]["ssim"] += m["ssim"]
                if lpips is not None:
                    sums[name]["lpips"] += float(lpips(pred.clamp(0, 1), high.clamp(0, 1)))
    normal_pairs = len(well_exposed[meta["name"]])
    dark = max(n - normal_pairs, 1)
    rows = []
    for name in methods:
        row = {"method": name, "psnr": round(sums[name]["psnr"] / dark, 3), "ssim": round(sums[name]["ssim"] / dark, 4),
               "lpips": round(sums[name]["lpips"] / dark, 4) if lpips is not None else None}
        if normal_pairs:
            value = float(np.mean(well_exposed[name]))
            row["well_exposed_psnr"] = round(value, 3) if math.isfinite(value) else None
        rows.append(row)
    best_baseline = max(rows[1:], key=lambda r: r["psnr"])
    result = {
        "checkpoint": str(checkpoint), "model": meta["name"], "data": source, "pairs": n,
        "degradation": degradation if data == "synthetic" else None, "normal_exposure_pairs": normal_pairs,
        "protocol": "standard: PSNR and SSIM on outputs clipped to [0, 1], no rescaling to the reference's mean",
        "lpips": "AlexNet LPIPS" if lpips is not None else f"n/a: weights unavailable ({lpips_reason})",
        "rows": rows, "gain_over_best_baseline_db": round(rows[0]["psnr"] - best_baseline["psnr"], 2),
        "best_baseline": best_baseline["method"], **(extra or {}),
    }
    print(f"bench: {n} pairs from {source}; LPIPS: {result['lpips']}")
    if normal_pairs:
        print(f"{n - normal_pairs} low-light pairs; {normal_pairs} at normal exposure, whose target is the input "
              "itself, scored apart as the PSNR of the output against its input")
    extra_column = " well-exposed PSNR vs input (dB) |" if normal_pairs else ""
    print("| method | PSNR (dB) | SSIM | LPIPS |" + extra_column)
    print("|---|---:|---:|---:|" + ("---:|" if normal_pairs else ""))
    for row in rows:
        lp = f"{row['lpips']:.4f}" if row["lpips"] is not None else "n/a"
        fidelity = ""
        if normal_pairs:
            fidelity = f" {row['well_exposed_psnr']:.2f} |" if row["well_exposed_psnr"] is not None else " inf |"
        print(f"| {row['method']} | {row['psnr']:.2f} | {row['ssim']:.4f} | {lp} |" + fidelity)
    print(f"gain over the best baseline ({best_baseline['method']}): {result['gain_over_best_baseline_db']:+.2f} dB")
    if out is not None:
        from runtime.core.io import write_json

        write_json(out, result)
    return result


def validate_checkpoint(checkpoint, data: str, device: str = "cpu", seed: int = 0, image_size: int = 128) -> dict:
    """Validation losses and metrics of a checkpoint on the validation pairs (means over the pairs)."""
    import torch
    import torch.nn.functional as F

    from ..metrics import image_metrics

    model, meta = load_lowlight(checkpoint, device)
    dataset, source = eval_set(data, "valid", seed, size=image_size)
    totals = {"1_mae": 0.0, "2_mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    with torch.inference_mode():
        for i in range(len(dataset)):
            item = dataset[i]
            pred = model(item["low"][None].to(device)).float().cpu()
            high = item["high"][None]
            totals["1_mae"] += float(F.l1_loss(pred, high))
            totals["2_mse"] += float(F.mse_loss(pred, high))
            m = image_metrics(pred, high)
            totals["psnr"] += m["psnr"]
            totals["ssim"] += m["ssim"]
    means = {k: v / len(dataset) for k, v in totals.items()}
    return {"checkpoint": str(checkpoint), "model": meta["name"], "data": source,
            "pairs": len(dataset), **{k: round(v, 5) for k, v in means.items()}}


def write_samples(checkpoint, data: str, out: Path, limit: int | None, seed: int = 0, inputs: list[Path] | None = None,
                  device: str = "cpu") -> int:
    """Enhance images; write out/enhanced/NAME.png and out/compare/NAME.png (low | enhanced | high)."""
    import torch

    from ..data.images import read_image, write_image
    from .data import to_tensor

    model, meta = load_lowlight(checkpoint, device)
    if inputs is not None:
        items = [(p.stem, lambda p=p: (read_image(p), None)) for p in inputs]
    else:
        dataset, _ = eval_set(data, "infer" if data != "synthetic" else "bench", seed, size=None, require_high=False,
                              degradation=training_degradation(meta))
        names = [p.low.stem for p in dataset.pairs] if hasattr(dataset, "pairs") else [f"{i:04d}" for i in range(len(dataset))]

        def fetch(i):
            item = dataset[i]
            high = item.get("high")
            return item["low"].numpy().transpose(1, 2, 0), None if high is None else high.numpy().transpose(1, 2, 0)

        items = [(names[i], lambda i=i: fetch(i)) for i in range(len(dataset))]
    items = items[:limit] if limit else items
    for name, load in items:
        low, high = load()
        with torch.inference_mode():
            enhanced = model(to_tensor(low)[None].to(device)).float().cpu()[0].numpy().transpose(1, 2, 0)
        enhanced = np.clip(enhanced, 0, 1)
        write_image(out / "enhanced" / f"{name}.png", enhanced)
        panels = [low, enhanced] + ([high] if high is not None else [])
        gap = np.ones((low.shape[0], 4, 3), np.float32)
        write_image(out / "compare" / f"{name}.png", np.concatenate(sum(([p, gap] for p in panels), [])[:-1], axis=1))
    return len(items)
