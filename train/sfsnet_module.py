"""Lightning pieces for SfSNet (seed 002): data module, module with SfSNet's losses, held-out figures."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .checkpoint import build_metadata
from .metrics import image_metrics
from .models import create_model

__all__ = ["SfSNetData", "SfSNetModule", "ArrayDataset", "to_tensors", "decomposition_metrics", "LOSS_NAMES"]

LOSS_NAMES = ("recon", "normal", "albedo", "sh", "residue")
_IMAGES = ("image", "normals", "albedo", "residue", "relit_image", "relit_sh_image")


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Channel-last arrays to NCHW tensors (mask to N,1,H,W; SH vectors unchanged)."""
    out = {}
    for name, a in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if name in _IMAGES:
            t = t.permute(0, 3, 1, 2).contiguous()
        elif name in ("mask", "face"):
            t = t[:, None]
        out[name] = t
    return out


class ArrayDataset(Dataset):
    """Samples of a dictionary of equally long tensors."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.tensors = to_tensors(arrays)
        self.length = len(next(iter(self.tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


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


def _masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[1]).clamp_min(1.0)


def angular_error_deg(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean angle in degrees between unit normal maps (N, 3, H, W), over the mask's pixels."""
    cos = (F.normalize(prediction, dim=1) * F.normalize(target, dim=1)).sum(1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.rad2deg(torch.acos(cos))
    if mask is None:
        return angle.mean()
    return (angle * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def decomposition_metrics(parts: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], model=None) -> dict[str, float]:
    """Normal angular error, albedo and SH errors, reconstruction PSNR and, when the batch carries a
    second light, the PSNR of the image relit with it (against the full render and the SH-only one)."""
    mask = batch.get("mask")
    values = {
        "normal_deg": float(angular_error_deg(parts["normals"], batch["normals"], mask)),
        "normal_deg_face": float(angular_error_deg(parts["normals"], batch["normals"], batch.get("face", mask))),
        "albedo_mae": float((parts["albedo"] - batch["albedo"]).abs().mean()),
        "sh_mse": float(F.mse_loss(parts["sh"], batch["sh"])),
        # The SH vector is not identifiable from one view (over the visible normals several vectors
        # shade alike), so also compare the shading the two vectors give on the true normals.
        "sh_shading_mae": float((_sh_shading(batch["normals"], parts["sh"]) - _sh_shading(batch["normals"], batch["sh"]))
                                .abs().mean()),
        "recon_psnr": image_metrics(parts["reconstruction"], batch["image"])["psnr"],
    }
    if "relit_sh" in batch:
        relit = parts["albedo"] * _sh_shading(parts["normals"], batch["relit_sh"])
        full = image_metrics(relit, batch["relit_image"])
        values.update(relit_psnr=full["psnr"], relit_ssim=full["ssim"],
                      relit_sh_psnr=image_metrics(relit, batch["relit_sh_image"])["psnr"])
    return values


def _sh_shading(normals, sh):
    from .models.sh import sh_shading

    return sh_shading(normals, sh)


class SfSNetModule(L.LightningModule):
    """Trains a registered ``sfsnet_*`` model with SfSNet's losses and Adam.

    Loss = w_recon * L1(albedo * shading, image) + w_normal * L1(normals) + w_albedo * L1(albedo)
    + w_sh * MSE(sh) (+ w_residue * L1(residue) when the data has it and the weight is not zero).
    """

    def __init__(self, model_name: str = "sfsnet_edge", model_config: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 5e-4, loss_weights: dict | None = None, data_summary: dict | None = None,
                 channels_last: bool = True, epochs: int = 10) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, **(model_config or {}))
        self.weights = {"recon": 0.5, "normal": 0.5, "albedo": 0.5, "sh": 1.0, "residue": 0.5, **(loss_weights or {})}
        self.last_val_metrics: dict[str, float] = {}

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _decompose(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model.decompose(image)

    def losses(self, parts: dict, batch: dict) -> dict[str, torch.Tensor]:
        mask = batch["mask"]
        terms = {
            "recon": _masked_l1(parts["reconstruction"], batch["image"], mask),
            "normal": _masked_l1(parts["normals"], batch["normals"], mask),
            "albedo": _masked_l1(parts["albedo"], batch["albedo"], mask),
            "sh": F.mse_loss(parts["sh"], batch["sh"]),
        }
        if self.weights["residue"] > 0 and "residue" in batch:
            terms["residue"] = _masked_l1(parts["residue"], batch["residue"], mask)
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

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
