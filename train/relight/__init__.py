"""The ``relight`` family: the camera relighting chain composed from a trained ``sfsnet`` and ``unet``
(``python -m train.relight``). It is composed, not trained.

model.py (RelightChain and its two presets), data.py (realistic inputs), cli.py (compose, infer, strip).
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_model
from .model import relight_point, relight_sh

register_model(relight_point)
register_model(relight_sh)



_SFSNET_TEST, _UNET_TEST = {"name": "sfsnet_test", "config": {}}, {"name": "unet_test", "config": {}}

register_family(Family(
    name="relight", task="relight", sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("relight_point", {"sfsnet": _SFSNET_TEST, "unet": _UNET_TEST}),
          ("relight_sh", {"sfsnet": _SFSNET_TEST, "unet": None})),
    train_step=None, command="train.relight",
    description="the camera relighting chain: sfsnet + unet (point light) or sfsnet + SH shading",
))
