"""Lightning pieces for the relighting U-Net: module, data module, and the comparison-grid callback."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..checkpoint import build_metadata
from ..data.render import lambertian_baseline
from ..metrics import image_metrics
from ..models import create_model
from ..plots import save_comparison_grid
from .data import PatchRelightingDataset
from .losses import INPUT_NAMES, CombinedLoss, LossWeights, predict

__all__ = ["RelightingDataModule", "RelightingModule", "ComparisonGrid", "INPUT_NAMES"]


class RelightingDataModule(L.LightningDataModule):
    """Train on jittered patches, validate on whole images (held-out testing is ``train.unet.evaluate``'s).

    Args:
        splits: ``{"train": arrays, "val": arrays, "test": arrays}`` (see ``train.unet.data``).
        summary: a JSON-able description of the data, stored in checkpoints.
        batch_size: training patches per batch.
        num_patches: desired patches per training image.
        workers: DataLoader worker processes.
        seed: seed of the patch jitter.
    """

    def __init__(self, splits: dict, summary: dict, batch_size: int = 16, num_patches: int = 16, workers: int = 0, seed: int = 0):
        super().__init__()
        self.splits, self.summary = splits, summary
        self.batch_size, self.num_patches, self.workers, self.seed = batch_size, num_patches, workers, seed
        self.train_set = PatchRelightingDataset(splits["train"], num_patches=num_patches, jitter=True, seed=seed)
        self.val_set = PatchRelightingDataset(splits["val"], num_patches=None)
        self.summary = {**summary, "patch_size": list(self.train_set.patch_size), "train_patches": len(self.train_set)}

    def _loader(self, dataset, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, num_workers=self.workers,
            persistent_workers=self.workers > 0, drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, max(1, self.batch_size // 4))


class RelightingModule(L.LightningModule):
    """Trains a registered relighting model with Adam and ReduceLROnPlateau.

    Args:
        model_name: registry name, e.g. ``unet_edge``.
        model_config: overrides of the preset's config.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        loss_weights: MSE / perceptual / luminance weights.
        perceptual_required: fail instead of warning when the VGG16 weights are unavailable.
        plateau_patience: epochs without improvement before the learning rate drops.
        plateau_factor: factor of each drop.
        light_intensity: the data's light intensity, for the Lambertian baseline.
        data_summary: stored in checkpoints.
        channels_last: train in the NHWC memory format (faster convolutions on CPUs and tensor cores).
    """

    def __init__(
        self,
        model_name: str = "unet_edge",
        model_config: dict | None = None,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        loss_weights: dict | None = None,
        perceptual_required: bool = False,
        plateau_patience: int = 2,
        plateau_factor: float = 0.5,
        light_intensity: float = 1.0,
        data_summary: dict | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, **(model_config or {}))
        # Kept out of the module tree: the frozen VGG is not part of the model's weights.
        object.__setattr__(self, "criterion", CombinedLoss(LossWeights(**(loss_weights or {})), perceptual_required))
        self.last_val_metrics: dict[str, float] = {}

    def forward(self, distances, cosines, albedo, normals):
        return self.model(distances, cosines, albedo, normals)

    def setup(self, stage: str) -> None:
        # Before the strategy wraps the model (DDP buckets follow the parameters' strides).
        if self.hparams.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        self.criterion.to(self.device)

    def on_validation_start(self) -> None:
        self.criterion.to(self.device)

    def _predict(self, batch: dict) -> torch.Tensor:
        return predict(self.model, batch, self.hparams.channels_last)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.criterion(self._predict(batch), batch["targets"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=False, on_epoch=True,
                      prog_bar=False, batch_size=batch["targets"].shape[0], sync_dist=True)
        self.log("loss", terms["loss"], on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        prediction = self._predict(batch)
        target = batch["targets"]
        terms = self.criterion(prediction, target)
        baseline = lambertian_baseline(batch["distances"], batch["cosines"], batch["albedo"], self.hparams.light_intensity)
        values = {f"val/{k}": v for k, v in terms.items()}
        values.update({f"val/{k}": v for k, v in image_metrics(prediction, target).items()})
        values.update({f"val/baseline_{k}": v for k, v in image_metrics(baseline, target).items()})
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=False, batch_size=target.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        self.last_val_metrics = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}
        if "val/psnr" in metrics:
            self.log("val_psnr", metrics["val/psnr"], prog_bar=True, logger=False, sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.hparams.plateau_factor, patience=self.hparams.plateau_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss", "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["edgelight"] = build_metadata(
            self.model, data=self.hparams.data_summary, metrics={"val": dict(self.last_val_metrics), "epoch": self.current_epoch}
        )


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
