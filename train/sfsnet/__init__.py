"""The ``sfsnet`` family: seed 002's SfSNet with a shading residue (``python -m train.sfsnet``).

model.py (SfSNet and its presets), data.py (synthetic faces, SfSNet's folder layout, realistic inputs),
losses.py (SfSNet's losses), module.py (Lightning), evaluate.py (held-out figures and strips), cli.py.
"""

from ..families import Family, register_family
from ..models.registry import register_presets
from .model import SFSNET_PRESETS, SfSNet

register_presets("sfsnet", {preset: (SfSNet, config) for preset, config in SFSNET_PRESETS.items()})


def _sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int):
    from .data import sample_inputs

    return sample_inputs(meta, batch, height, width, seed)


def _train_step(model, seed: int):
    from .losses import train_step

    return train_step(model, seed)


register_family(Family(
    name="sfsnet", task=None, sample_inputs=_sample_inputs, tiny=(("sfsnet_test", {}),), train_step=_train_step,
    command="train.sfsnet", description="seed 002's SfSNet: normals, albedo, SH light and a shading residue",
))
