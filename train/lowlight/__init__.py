"""The ``lowlight`` family: seed 003's low-light enhancer and its real-time variant (``python -m train.lowlight``).

model.py (IllRecNet, LowLightEdge and their presets), data.py (pair layouts, synthetic degradation,
realistic inputs), losses.py (the training loss), module.py (Lightning), evaluate.py (valid, bench
against classical baselines, enhanced samples), cli.py.
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_presets
from .model import LOWLIGHT_PRESETS

register_presets("lowlight", LOWLIGHT_PRESETS)


register_family(Family(
    name="lowlight", task="enhance", sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("lowlight_test", {}), ("lowlight_edgetest", {})),
    train_step=lazy(f"{__name__}.losses", "train_step"), command="train.lowlight",
    description="seed 003's low-light enhancer (IllRecNet) and its real-time variant",
))
