"""The ``unet`` family: seed 000's relighting U-Net (``python -m train.unet``).

model.py (RelightUNet and its presets), data.py (the dataset format, patches, realistic inputs),
losses.py (the training loss), module.py (Lightning), evaluate.py (held-out figures), cli.py.
"""

from ..families import Family, register_family
from ..models.registry import register_presets
from .model import UNET_PRESETS, RelightUNet

register_presets("unet", {preset: (RelightUNet, config) for preset, config in UNET_PRESETS.items()})


def _sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int):
    from .data import sample_inputs

    return sample_inputs(meta, batch, height, width, seed)


def _train_step(model, seed: int):
    from .losses import train_step

    return train_step(model, seed)


register_family(Family(
    name="unet", task=None, sample_inputs=_sample_inputs, tiny=(("unet_test", {}),), train_step=_train_step,
    command="train.unet", description="seed 000's relighting U-Net: scene geometry and a point light to an image",
))
