"""The ``lowlight`` family: seed 003's low-light enhancer and its real-time variants (``python -m train.lowlight``).

model.py (IllRecNet, the real-time LowLightEdgeV2 and LowLightEdge, a Zero-DCE++-style speed reference, and
their presets), data.py (pair layouts, the camera-pipeline and classic degradations, realistic inputs),
losses.py (the training loss), module.py (Lightning), evaluate.py (valid, bench against classical
baselines, enhanced samples), independent.py (an evaluation-only degradation), codec.py (clips through
H.264 / MPEG-4 in memory), video.py (``video-bench``), cli.py.
"""

from ..families import Family, lazy, register_family
from ..models.registry import register_presets, register_rename
from .model import LOWLIGHT_PRESETS

register_presets("lowlight", LOWLIGHT_PRESETS)
# Checkpoints of the first-generation edge model, saved as lowlight_edge before it took a versioned name.
register_rename("lowlight_edge", "lowlight_edge_v1", lambda config: "embed_dim" in config)
register_rename("lowlight_edgetest", "lowlight_edgetest_v1", lambda config: "embed_dim" in config)


register_family(Family(
    name="lowlight", task="enhance", sample_inputs=lazy(f"{__name__}.data", "sample_inputs"),
    tiny=(("lowlight_test", {}), ("lowlight_edgetest", {}), ("lowlight_edgetest_v1", {})),
    train_step=lazy(f"{__name__}.losses", "train_step"), command="train.lowlight",
    description="seed 003's low-light enhancer (IllRecNet) and its real-time variants",
))
