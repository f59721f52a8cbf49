"""The ``ibr`` family: seed 001's image-based relighting of one captured scene (``python -m train.ibr``).

model.py (the per-pixel network and its presets), data.py (HDR normalisation, the synthetic light
stage, the pixel sampler, realistic inputs), capture.py (capture folders), losses.py (the seed's loss),
module.py (the training loop), evaluate.py (held-out lights against baselines), cli.py.
"""

from pathlib import Path

from ..families import Family, lazy, register_family
from ..models.registry import register_presets
from .data import AVERAGE_FILE
from .model import IBR_PRESETS, ImageBasedRelighting

register_presets("ibr", {preset: (ImageBasedRelighting, config) for preset, config in IBR_PRESETS.items()})




def _assets(meta: dict, checkpoint):
    """The capture's average image (the model's input), saved beside the checkpoint by training."""
    average = Path(checkpoint).parent / AVERAGE_FILE
    return {"average": average} if average.is_file() else {}


register_family(Family(
    name="ibr", task="ibr", sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("ibr_test", {}),),
    train_step=lazy(f"{__name__}.losses", "train_step"),
    command="train.ibr", assets=_assets,
    description="seed 001's image-based relighting: one scene's light transport from a capture",
))
