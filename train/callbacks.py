"""Lightning callbacks: comparison image grids during training."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from .data.render import lambertian_baseline
from .plots import save_comparison_grid

__all__ = ["ComparisonGrid"]


class ComparisonGrid(L.Callback):
    """Every ``every`` epochs, write inputs / baseline / prediction / target / error for the first
    ``images`` validation samples to ``folder/epoch_NNN.png`` (``every=0`` writes none)."""

    def __init__(self, folder: str | Path, every: int = 1, images: int = 4) -> None:
        self.folder, self.every, self.images = Path(folder), every, images

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.every or trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every:
            return
        dataset = trainer.datamodule.val_set
        items = [dataset[i] for i in range(min(self.images, len(dataset)))]
        batch = {k: torch.stack([item[k] for item in items]).to(module.device) for k in items[0]}
        with torch.no_grad():
            prediction = module(batch["distances"], batch["cosines"], batch["albedo"], batch["normals"])
        baseline = lambertian_baseline(batch["distances"], batch["cosines"], batch["albedo"], module.hparams.light_intensity)
        psnr = trainer.callback_metrics.get("val/psnr")
        title = f"epoch {epoch}" + (f", validation PSNR {float(psnr):.2f} dB" if psnr is not None else "")
        save_comparison_grid(self.folder / f"epoch_{epoch:03d}.png", batch, prediction, baseline, title=title)
