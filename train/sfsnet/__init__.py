"""The ``sfsnet`` family: seed 002's SfSNet with a shading residue (``python -m train.sfsnet``).

model.py (SfSNet and its presets), data.py (synthetic faces, SfSNet's folder layout, realistic inputs),
losses.py (SfSNet's losses), module.py (Lightning), evaluate.py (held-out figures and strips), cli.py.
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_presets
from .model import SFSNET_PRESETS, SfSNet

register_presets("sfsnet", {preset: (SfSNet, config) for preset, config in SFSNET_PRESETS.items()})


register_family(Family(
    name="sfsnet", task=None, sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("sfsnet_test", {}),),
    train_step=lazy(f"{__name__}.losses", "train_step"),
    command="train.sfsnet", description="seed 002's SfSNet: normals, albedo, SH light and a shading residue",
))
