"""The ``unet`` family: seed 000's relighting U-Net (``python -m train.unet``).

model.py (RelightUNet and its presets), data.py (the dataset format, patches, realistic inputs),
losses.py (the training loss), module.py (Lightning), evaluate.py (held-out figures), cli.py.
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_presets
from .model import UNET_PRESETS, RelightUNet

register_presets("unet", {preset: (RelightUNet, config) for preset, config in UNET_PRESETS.items()})


register_family(Family(
    name="unet", task=None, sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("unet_test", {}),),
    train_step=lazy(f"{__name__}.losses", "train_step"),
    command="train.unet", description="seed 000's relighting U-Net: scene geometry and a point light to an image",
))
