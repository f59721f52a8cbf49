"""The ``ibr`` family: seed 001's image-based relighting of one captured scene (``python -m train.ibr``).

model.py (the per-pixel network and its presets), data.py (HDR normalisation, the synthetic light
stage, the pixel sampler, realistic inputs), capture.py (capture folders), losses.py (the seed's loss),
module.py (the training loop), evaluate.py (held-out lights against baselines), cli.py.
"""

from pathlib import Path

from ..families import Family, register_family
from ..models.registry import register_presets
from .data import AVERAGE_FILE
from .model import IBR_PRESETS, ImageBasedRelighting

register_presets("ibr", {preset: (ImageBasedRelighting, config) for preset, config in IBR_PRESETS.items()})


def _sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int):
    from .data import sample_inputs

    return sample_inputs(meta, batch, height, width, seed)


def _train_step(model, seed: int):
    from .losses import train_step

    return train_step(model, seed)


def _assets(meta: dict, checkpoint):
    """The capture's average image (the model's input), saved beside the checkpoint by training."""
    average = Path(checkpoint).parent / AVERAGE_FILE
    return {"average": average} if average.is_file() else {}


register_family(Family(
    name="ibr", task="ibr", sample_inputs=_sample_inputs, tiny=(("ibr_test", {}),), train_step=_train_step,
    command="train.ibr", assets=_assets,
    description="seed 001's image-based relighting: one scene's light transport from a capture",
))
