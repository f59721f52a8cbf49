"""The ``lowlight`` family: seed 003's low-light enhancer and its real-time variant (``python -m train.lowlight``).

model.py (IllRecNet, LowLightEdge and their presets), data.py (pair layouts, synthetic degradation,
realistic inputs), losses.py (the training loss), module.py (Lightning), evaluate.py (valid, bench
against classical baselines, enhanced samples), cli.py.
"""

from ..families import Family, register_family
from ..models.registry import register_presets
from .model import LOWLIGHT_PRESETS

register_presets("lowlight", LOWLIGHT_PRESETS)


def _sample_inputs(meta: dict, batch: int, height: int, width: int, seed: int):
    from .data import sample_inputs

    return sample_inputs(meta, batch, height, width, seed)


def _train_step(model, seed: int):
    from .losses import train_step

    return train_step(model, seed)


register_family(Family(
    name="lowlight", task="enhance", sample_inputs=_sample_inputs,
    tiny=(("lowlight_test", {}), ("lowlight_edgetest", {})), train_step=_train_step, command="train.lowlight",
    description="seed 003's low-light enhancer (IllRecNet) and its real-time variant",
))
