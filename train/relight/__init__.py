"""The ``relight`` family: the camera relighting chain composed from a trained ``sfsnet`` and ``unet``
(``python -m train.relight``). It is composed, not trained.

model.py (RelightChain and its two presets), edge.py (``relight_edge``: the real-time shading-ratio model),
data.py (realistic inputs), cli.py (compose, infer, strip).
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_model
from .edge import relight_edge
from .model import relight_point, relight_sh

register_model(relight_point)
register_model(relight_sh)
register_model(relight_edge)

_SFSNET_TEST, _UNET_TEST = {"name": "sfsnet_test", "config": {}}, {"name": "unet_test", "config": {}}

register_family(Family(
    name="relight", task="relight", sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("relight_point", {"sfsnet": _SFSNET_TEST, "unet": _UNET_TEST}),
          ("relight_sh", {"sfsnet": _SFSNET_TEST, "unet": None}),
          ("relight_edge", {"sfsnet": {"name": "sfsnet_test", "config": {"mask": True}}})),
    train_step=None, command="train.relight",
    description="the camera relighting chain: sfsnet + unet (point light) or sfsnet + SH shading; relight_edge: "
                "a low-resolution SH shading ratio applied to the frame, for video",
))
