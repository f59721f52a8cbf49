"""Lightning module and data module for low-light enhancement (seed 003)."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..checkpoint import build_metadata
from ..metrics import image_metrics
from ..models import create_model
from .data import SPLIT_SEEDS, PairDataset, SyntheticPairs, find_pairs, folder_photos, photo_split
from .losses import reconstruction_terms, training_terms

__all__ = ["LowLightData", "LowLightModule"]


class LowLightData(L.LightningDataModule):
    """Training and validation pairs: synthetic (from clean photos) or from a dataset folder.

    Args:
        data: ``"synthetic"`` or a folder in the seed's or LOL-v1's layout.
        image_size: side of the square training crops (and of the validation centre crops).
        photos: folder of clean photos for synthetic pairs (default: scikit-image's, training split).
        degradation: how synthetic pairs are made (``data.DEGRADATIONS``: ``camera`` or ``classic``).
        train_samples / valid_samples: synthetic pairs per epoch / in the fixed validation set.
    """

    def __init__(self, data: str = "synthetic", image_size: int = 128, batch_size: int = 8, train_samples: int = 2000,
                 valid_samples: int = 32, workers: int = 0, seed: int = 0, photos: str | None = None,
                 degradation: str = "camera") -> None:
        super().__init__()
        self.data, self.image_size, self.batch_size, self.workers = data, image_size, batch_size, workers
        if data == "synthetic":
            train_photos = folder_photos(photos) if photos else photo_split("train")
            valid_photos = train_photos[-1:] if photos else photo_split("valid")
            if photos and len(train_photos) > 1:
                train_photos = train_photos[:-1]
            self.train_set = SyntheticPairs(train_photos, train_samples, image_size, seed=seed, degradation=degradation)
            self.valid_set = SyntheticPairs(valid_photos, valid_samples, image_size, seed=SPLIT_SEEDS["valid"] + seed,
                                            fixed=True, degradation=degradation)
            self.summary = {"source": "synthetic", "photos": photos or "scikit-image (training split)",
                            "train_pairs_per_epoch": train_samples, "valid_pairs": valid_samples,
                            "degradation": degradation}
        else:
            train_pairs, valid_pairs = find_pairs(data, "train"), find_pairs(data, "valid")
            self.train_set = PairDataset(train_pairs, image_size, train=True, seed=seed)
            self.valid_set = PairDataset(valid_pairs, image_size, train=False)
            self.summary = {"source": str(data), "train_pairs": len(train_pairs), "valid_pairs": len(valid_pairs),
                            "subsets": sorted({p.subset for p in train_pairs})}
        self.summary["crop"] = image_size

    def _loader(self, dataset, train: bool) -> DataLoader:
        # Workers are spawned, not forked: a fork copies OpenCV's and the BLAS libraries' thread pools
        # in whatever state they are, and a worker can then wait forever on a lock no thread will release.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.workers, persistent_workers=self.workers > 0,
                          multiprocessing_context="spawn" if self.workers > 0 else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.valid_set, train=False)


class LowLightModule(L.LightningModule):
    """MAE + MSE (+ SSIM, + temporal consistency) with AdamW, linear warm-up and cosine decay.

    Args:
        model_name: registry name such as ``lowlight_edge``.
        model_config: overrides of the preset's config (embed_dim, num_heads, ...).
        lr / weight_decay / betas: AdamW settings.
        warmup_epochs: epochs of linear warm-up before the cosine decay (fractions allowed).
        mae_weight / mse_weight / ssim_weight: weights of the reconstruction terms.
        temporal_weight: weight of the consistency between enhancing a warped frame and warping the
            enhanced frame (StableLLVE); 0 switches it off.
        data_summary: stored in checkpoints.
    """

    def __init__(self, model_name: str = "lowlight_edge", model_config: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), warmup_epochs: float = 1.0,
                 mae_weight: float = 1.0, mse_weight: float = 1.0, ssim_weight: float = 0.0,
                 temporal_weight: float = 0.0, data_summary: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, **(model_config or {}))
        self.last_val_metrics: dict[str, float] = {}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)

    def _terms(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        return reconstruction_terms(prediction, target, hp.mae_weight, hp.mse_weight, hp.ssim_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        terms = training_terms(self.model, batch, hp.mae_weight, hp.mse_weight, hp.ssim_weight, hp.temporal_weight)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=False, on_epoch=True,
                      batch_size=batch["low"].shape[0], sync_dist=True)
        self.log("loss", terms["3_total"], on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return terms["3_total"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        prediction = self.model(batch["low"])
        terms = self._terms(prediction, batch["high"])
        values = {f"valid/{k}": v for k, v in terms.items()}
        values.update({f"valid/{k}": v for k, v in image_metrics(prediction, batch["high"]).items()})
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=batch["low"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        self.last_val_metrics = {k: float(v) for k, v in metrics.items() if k.startswith("valid/")}
        if "valid/psnr" in metrics:
            self.log("valid_psnr", metrics["valid/psnr"], prog_bar=True, logger=False, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = min(total - 1, max(1, int(hp.warmup_epochs * total / epochs))) if hp.warmup_epochs > 0 else 0

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["edgelight"] = build_metadata(
            self.model, data=self.hparams.data_summary,
            metrics={"valid": dict(self.last_val_metrics), "epoch": self.current_epoch},
        )
