"""Lightning pieces for SfSNet (seed 002): the data module and the module training SfSNet's losses."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..checkpoint import build_metadata
from ..models import create_model
from .data import ArrayDataset
from .evaluate import decomposition_metrics
from .losses import DEFAULT_WEIGHTS, sfsnet_losses

__all__ = ["SfSNetData", "SfSNetModule"]


class SfSNetData(L.LightningDataModule):
    """Whole images in memory; ``summary`` describes them for checkpoints."""

    def __init__(self, splits: dict, summary: dict, batch_size: int = 8, workers: int = 0) -> None:
        super().__init__()
        self.summary, self.batch_size, self.workers = summary, batch_size, workers
        self.train_set = ArrayDataset(splits["train"])
        self.val_set = ArrayDataset(splits["val"])

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.workers,
                          persistent_workers=self.workers > 0, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)


class SfSNetModule(L.LightningModule):
    """Trains a registered ``sfsnet_*`` model with SfSNet's losses and Adam.

    Loss = w_recon * L1(albedo * shading, image) + w_normal * L1(normals) + w_albedo * L1(albedo)
    + w_sh * MSE(sh) (+ w_residue * L1(residue) when the data has it and the weight is not zero)
    (+ w_mask * BCE(person mask) for models with a mask on data with one).
    """

    def __init__(self, model_name: str = "sfsnet_edge", model_config: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 5e-4, loss_weights: dict | None = None, data_summary: dict | None = None,
                 channels_last: bool = True, epochs: int = 10) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, **(model_config or {}))
        self.weights = {**DEFAULT_WEIGHTS, **(loss_weights or {})}
        self.last_val_metrics: dict[str, float] = {}

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _decompose(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model.decompose(image)

    def losses(self, parts: dict, batch: dict) -> dict[str, torch.Tensor]:
        return sfsnet_losses(parts, batch, self.weights)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.losses(self._decompose(batch["image"]), batch)
        n = batch["image"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=False, on_epoch=True, batch_size=n,
                      sync_dist=True)
        self.log("loss", terms["loss"], on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        parts = self._decompose(batch["image"])
        values = {f"val/{k}": v for k, v in self.losses(parts, batch).items()}
        values.update({f"val/{k}": v for k, v in decomposition_metrics(parts, batch).items()})
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=batch["image"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        self.last_val_metrics = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}
        if "val/normal_deg" in metrics:
            self.log("val_deg", metrics["val/normal_deg"], prog_bar=True, logger=False, sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        epochs = max(1, self.hparams.epochs)
        # A short warm-up then cosine decay to 5% of the rate, per epoch.
        schedule = lambda e: min(1.0, (e + 1) / 2) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * e / epochs)))  # noqa: E731
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["edgelight"] = build_metadata(
            self.model, data=self.hparams.data_summary, metrics={"val": dict(self.last_val_metrics), "epoch": self.current_epoch}
        )
