"""``python -m train.relight``: build the camera relighting chain from trained checkpoints, and try it.

    python -m train.relight compose --sfsnet runs/sfsnet --unet runs/unet --out runs/relight.ckpt
    python -m train.relight compose --light sh --sfsnet runs/sfsnet --out runs/relight_sh.ckpt
    python -m train.relight compose --edge --sfsnet runs/sfsnet_face --out runs/relight_edge.ckpt
    python -m train.relight infer --model runs/relight.ckpt --input frame.png --light 0.5,-0.3,2.5 --out relit.png
    python -m train.relight strip --model runs/relight.ckpt --lights orbit --out orbit.png

``compose`` writes one checkpoint (the contract of ``train.checkpoint``) holding both networks; export,
the runtime and the benchmarks load it like any other model. Its metadata records where each part
came from (path, SHA-256, held-out figures). ``--edge`` builds ``relight_edge``, the real-time model (an SH
shading ratio at low resolution applied to the frame), from an sfsnet trained with a person mask.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from runtime.core.cli import ArgumentParser, bounded_int, image_size
from runtime.core.errors import UserError
from runtime.core.lighting import point_light_path

__all__ = ["compose", "main"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compose(sfsnet: str, unet: str | None, out: str, light: str = "point", srgb: bool = True, edge: bool = False,
            scale: int = 4):
    """Load the checkpoints, check their families, and write the chain to ``out``. Returns the model.

    ``edge`` builds ``relight_edge`` (SH light; the sfsnet must predict a person mask) instead of
    ``relight_<light>``.
    """
    from ..checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
    from ..models import create_model

    if edge:
        light = "sh"
    parts = {}
    wanted = {"sfsnet": sfsnet} if light == "sh" else {"sfsnet": sfsnet, "unet": unet}
    for family, path in wanted.items():
        if path is None:
            raise UserError(f"a {light}-light chain needs --{family}")
        model, meta = load_checkpoint(path, family=family, purpose=f"--{family}")
        parts[family] = (model, meta, checkpoint_path(path))
    if "unet" in parts and parts["unet"][0].config.albedo_channels != 3:
        raise UserError(f"--unet {unet} takes {parts['unet'][0].config.albedo_channels}-channel albedo; "
                        "the chain feeds it SfSNet's RGB albedo")
    if edge and not getattr(parts["sfsnet"][0].config, "mask", False):
        raise UserError(f"--sfsnet {sfsnet} ({parts['sfsnet'][1]['name']}) predicts no person mask; --edge needs one "
                        "(train it with python -m train.sfsnet --preset face --data people)")
    sfsnet_part = {"name": parts["sfsnet"][1]["name"], "config": parts["sfsnet"][1]["config"]}
    if edge:  # the shading ratio never uses the residue: its branch is left out
        sfsnet_part["config"] = {**sfsnet_part["config"], "residue": False}
        chain = create_model("relight_edge", sfsnet=sfsnet_part, srgb=srgb, scale=scale)
    else:
        chain = create_model(f"relight_{light}", srgb=srgb, sfsnet=sfsnet_part,
                             unet={"name": parts["unet"][1]["name"], "config": parts["unet"][1]["config"]}
                             if "unet" in parts else None)
    for family, (model, _, _) in parts.items():
        target = getattr(chain, family)
        state = model.state_dict()
        if edge:
            state = {k: v for k, v in state.items() if not k.startswith("residue_")}
        target.load_state_dict(state)
    sources = {family: {"checkpoint": str(path.resolve()), "sha256": _sha256(path), "name": meta["name"],
                        "metrics": meta.get("metrics", {}), "data": meta.get("data", {})}
               for family, (_, meta, path) in parts.items()}
    save_checkpoint(out, chain.eval(), data={"composed_from": sources},
                    metrics={family: src["metrics"].get("test", {}) for family, src in sources.items()})
    return chain


def build_compose_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.relight compose",
                       description="Write the relighting chain (sfsnet + unet, or sfsnet + SH shading) or the "
                                   "real-time relight_edge model (--edge) as one checkpoint.")
    p.add_argument("--sfsnet", required=True, metavar="CKPT", help="trained sfsnet checkpoint or run folder")
    p.add_argument("--unet", metavar="CKPT", default=None, help="trained unet checkpoint or run folder (point light)")
    p.add_argument("--light", choices=["point", "sh"], default=None,
                   help="'point': a point light rendered by the unet; 'sh': 27 SH coefficients, SfSNet's shading "
                        "(default: point; sh with --edge)")
    p.add_argument("--edge", action="store_true",
                   help="relight_edge: the real-time model, an SH shading ratio estimated at 1/4 resolution and "
                        "applied to the frame (needs an sfsnet with a person mask, such as sfsnet_face)")
    p.add_argument("--scale", type=bounded_int(1, 16), default=4, metavar="N",
                   help="--edge: the decomposition runs at 1/N of the frame (smaller N for frames where faces are small: "
                        "the network sees faces of 15 to 100 pixels at its resolution; N = 2 costs about 4x of 4)")
    p.add_argument("--linear", action="store_true", help="frames in and out are linear RGB (default: sRGB, as cameras give)")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def _compose_main(argv: Sequence[str] | None) -> int:
    args = build_compose_parser().parse_args(argv)
    if Path(args.out).exists() and not args.overwrite:
        raise UserError(f"{args.out} exists; pass --overwrite or choose another --out")
    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; give a file name such as relight.ckpt")
    if args.edge and args.light == "point":
        raise UserError("--edge takes SH light; drop --light point")
    if args.edge and args.unet:
        raise UserError("--unet is not used by --edge (it relights with SH shading)")
    light = "sh" if args.edge else args.light or "point"
    if light == "sh" and args.unet:
        raise UserError("--unet is not used by an SH chain (--light sh)")
    if args.scale != 4 and not args.edge:
        raise UserError("--scale applies to --edge only")
    chain = compose(args.sfsnet, args.unet, args.out, light, srgb=not args.linear, edge=args.edge, scale=args.scale)
    params = sum(p.numel() for p in chain.parameters())
    print(f"wrote {args.out}: relight_{'edge' if args.edge else light} ({params:,} parameters; inputs "
          f"{', '.join(i['name'] for i in chain.io_contract()['inputs'])})")
    return 0


def build_infer_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.relight infer", description="Relight one image with a composed chain.")
    p.add_argument("--model", required=True, metavar="CKPT", help="relight checkpoint (from compose)")
    p.add_argument("--input", required=True, metavar="IMAGE", help="image file")
    p.add_argument("--light", default=None, metavar="X,Y,Z", help="point light position (point chains)")
    p.add_argument("--sh", default=None, metavar="PRESET|27 VALUES",
                   help="SH light (SH chains): a preset name (front, left, right, top, bottom, ambient) or 27 comma-separated values")
    p.add_argument("--out", required=True, metavar="PNG", help="image to write")
    return p


def parse_light(text: str, count: int, what: str):
    import numpy as np

    try:
        values = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        raise UserError(f"{what} {text!r}: expected {count} comma-separated numbers") from None
    if values.size != count or not np.isfinite(values).all():
        raise UserError(f"{what} {text!r}: expected {count} finite comma-separated numbers")
    return values


def _relight(model, image, light):
    """One frame (1, 3, H, W) under one light (1, K) -> (H, W, 3) array. ``relight_edge`` relights the person
    and keeps the background, with no light history (a single frame)."""
    import torch

    extra = {"background": torch.zeros(1, 1), "history": torch.zeros(1, 28)}
    names = [spec["name"] for spec in model.io_contract()["inputs"]][2:]
    out = model(image, light, *(extra[name] for name in names))
    out = out[0] if isinstance(out, tuple) else out
    return out[0].numpy().transpose(1, 2, 0)


def _infer_main(argv: Sequence[str] | None) -> int:
    import numpy as np
    import torch

    from ..checkpoint import load_checkpoint
    from ..data.images import read_image, write_image
    from ..models.sh import SH_PRESETS

    args = build_infer_parser().parse_args(argv)
    model, meta = load_checkpoint(args.model, family="relight", purpose="infer (make one with compose)")
    kind = model.config.light
    if kind == "point":
        if args.light is None:
            raise UserError("this chain takes a point light: pass --light X,Y,Z")
        light = parse_light(args.light, 3, "--light")
    else:
        if args.sh is None:
            raise UserError("this chain takes SH light: pass --sh PRESET or 27 values")
        light = SH_PRESETS[args.sh].copy() if args.sh in SH_PRESETS else parse_light(args.sh, 27, "--sh")
    image = read_image(args.input)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        y = _relight(model, x, torch.from_numpy(light)[None])
    write_image(args.out, y)
    print(f"wrote {args.out}")
    return 0


def build_strip_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.relight strip",
                       description="Relight one frame along a light path and save the frames side by side. Without "
                                   "--input, a held-out synthetic face scene is rendered at --size.")
    p.add_argument("--model", required=True, metavar="CKPT", help="relight checkpoint (from compose)")
    p.add_argument("--input", default=None, metavar="IMAGE", help="image file (default: a synthetic scene)")
    p.add_argument("--size", type=image_size, default="360x640", metavar="HxW", help="size of the synthetic scene")
    p.add_argument("--lights", choices=["orbit", "sweep"], default="orbit", help="light path")
    p.add_argument("--steps", type=bounded_int(1, 100), default=6, metavar="N", help="frames in the strip")
    p.add_argument("--out", required=True, metavar="PNG", help="strip to write")
    return p


def _strip_main(argv: Sequence[str] | None) -> int:
    import numpy as np
    import torch

    from ..checkpoint import load_checkpoint
    from ..data.images import read_image, write_image

    args = build_strip_parser().parse_args(argv)
    if args.steps < 1:
        raise UserError("--steps must be >= 1")
    model, meta = load_checkpoint(args.model, family="relight", purpose="strip (make one with compose)")
    if args.input:
        frame = read_image(args.input)
    else:
        from ..sfsnet.data import FaceRenderConfig, render_face_sample
        from .model import linear_to_srgb

        h, w = args.size
        linear = render_face_sample(30_000_000, FaceRenderConfig(height=h, width=w))["image"]
        frame = linear_to_srgb(torch.from_numpy(linear)).numpy() if model.config.srgb else linear
    if model.config.light == "point":
        lights = point_light_path(args.lights, args.steps)
    else:
        from runtime.core.lighting import sh_light_path as light_sequence

        lights, _ = light_sequence("orbit" if args.lights == "orbit" else "sweep", args.steps)
    x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        frames = [_relight(model, x, torch.from_numpy(light)[None]) for light in lights]
    write_image(args.out, np.concatenate([frame, *frames], axis=1))
    print(f"wrote {args.out}: input and {len(frames)} relit frames of {frame.shape[0]}x{frame.shape[1]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"compose": _compose_main, "infer": _infer_main, "strip": _strip_main}
    if not argv or argv[0] not in commands:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__.replace("``", "").strip())
            return 0
        raise UserError(f"expected a subcommand: {', '.join(commands)} (see --help)")
    return commands[argv[0]](argv[1:])


main.prog = "python -m train.relight"
