"""Temporal stability of a relighting model on compressed video of a real portrait: flicker, drift, lag, effect.

    python -m benchmarks.relight_video --model runs/relight_edge_export --sh left --threads 1
    python -m benchmarks.relight_video --model runs/relight_edge.ckpt --frames 60 --strip runs/relight_video.png

The clip. scikit-image's astronaut (a real photograph of a face) is resized to a ``H x H`` square portrait
(360x360 at the default 360x640: the face mesh covers about 70 x 85 pixels, a webcam at arm's length) and
placed in the middle of the ``H x W`` frame, its left and right edges feathered into a blurred copy of the
photograph that fills the frame as the background. Every frame of the STATIC clip shows this same scene
with its own sensor-like noise: Gaussian with ``--noise`` (0..255 units) plus shot noise whose standard
deviation is 2/255 at white and grows as the square root of the value. The frames go through H.264 (x264,
CRF ``--crf``, an intra frame every ``--gop`` frames, 4:2:0) and back with ``train.lowlight.codec.h264``:
what a webcam's or a phone's compressed stream gives a video call. On a static scene x264 codes little of
the new noise in its predicted frames: the decoded frames barely change within a group of pictures, and
the change comes in a step at each intra frame, where a fresh noise pattern is coded (keyframe pumping).
The flicker is therefore also given for the steps onto intra frames and for the others apart. With
``--pan PX`` a MOVING clip is made the same way, the portrait sliding ``PX`` pixels to the right each frame
over the static background (centred at the middle frame), so that smoothing that lags motion shows.

The runtime. ``runtime.load`` gives the runner for ``--model`` (an export folder, an ONNX file or a
checkpoint), and ``runtime.Pipeline(runner, RelightTask(...)).process(frame, index)`` relights the decoded
frames one at a time, the way an app that owns its capture loop drives it. ``process`` postprocesses each
frame before the next is fed, so the light estimate of frame i is exactly the history of frame i + 1 (the
threaded ``Pipeline.run`` postprocesses in its encode thread, where the history fed can be a frame or more
older, depending on timing). Every row uses the light ``--sh`` and ``--background keep``:

    off        --light-smoothing 0   --denoise 0      the network alone, frame by frame
    smoothing  --light-smoothing 0.8 --denoise 0      the light estimate smoothed over frames only
    default    --light-smoothing 0.8 --denoise 0.5    python -m runtime relight's defaults: plus the
                                                      motion-adaptive running average of the output

The figures, all mean absolute differences in 0..255 units over the face region (the pixels the 468-point
face mesh covers on the first clean frame, ``train.facemesh``; the middle of the portrait, half its side each
way, when no face is found, and the JSON says so):

* flicker: between consecutive output frames of the static clip, divided by the same figure of the input
  clip (1.0: the output flickers as much as its input; lower is steadier), and the absolute figure; also
  over the steps onto intra frames (frame t with t % gop == 0) and over the other steps alone;
* drift: of each output frame from the first output frame (mean and largest over the clip);
* effect: of each output frame from its input frame (a setting that steadies the output by not relighting
  it shows here);
* lag (moving clip): of each output frame from the ``off`` row's output of the same frame (mean, largest),
  over the face region moved with the portrait.

Writes the figures as JSON to ``--out`` and prints a table; ``--strip`` also writes a PNG: input frame t (the
face region outlined) and each row's output frame t above ``|frame t - frame t-1|`` of each, amplified 8
times, at the step where the input changes the most (the first intra frame after frame 0, if any).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path

import numpy as np

from runtime.core.cli import ArgumentParser, bounded_float, bounded_int, image_size, random_seed, thread_count
from runtime.core.errors import UserError

__all__ = ["ROWS", "face_region", "main", "make_clip", "measure", "pan_offsets", "relight_clip", "table",
           "write_strip"]

ROWS = (("off", 0.0, 0.0), ("smoothing", 0.8, 0.0), ("default", 0.8, 0.5))
"""(name, --light-smoothing, --denoise) of each measured setting."""

SHOT = 2.0 / 255.0
"""Standard deviation of the shot noise at white (it scales with the square root of the value)."""

AMPLIFY = 8.0
"""Gain of the strip's ``|frame t - frame t-1|`` maps."""


# ------------------------------------------------------------------------------------------------- the clip


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


def _background(height: int, width: int) -> np.ndarray:
    """The photograph scaled to cover the frame, centre-cropped and blurred: float RGB in [0, 1]."""
    import cv2

    photo = _astronaut()
    side = max(height, width)
    cover = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    top, left = (side - height) // 2, (side - width) // 2
    crop = cover[top : top + height, left : left + width].astype(np.float32) / 255.0
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=max(1.0, width / 40))


def _portrait(side: int) -> tuple[np.ndarray, np.ndarray]:
    """The photograph as a ``side`` x ``side`` float RGB square and its alpha (left and right edges feathered)."""
    import cv2

    image = cv2.resize(_astronaut(), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    feather = max(2, side // 30)
    ramp = np.ones(side, np.float32)
    edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(feather) + 0.5) / feather)
    ramp[:feather], ramp[side - feather :] = edge, edge[::-1]
    return image, np.broadcast_to(ramp[None, :, None], (side, side, 1))


def _scene(height: int, width: int, dx: int) -> np.ndarray:
    """The clean frame with the portrait moved ``dx`` pixels right of the middle: float RGB in [0, 1]."""
    frame = _background(height, width).copy()
    image, alpha = _portrait(height)
    x0 = (width - height) // 2 + dx
    lo, hi = max(0, x0), min(width, x0 + height)
    if hi > lo:
        a = alpha[:, lo - x0 : hi - x0]
        frame[:, lo:hi] = a * image[:, lo - x0 : hi - x0] + (1 - a) * frame[:, lo:hi]
    return frame


def pan_offsets(frames: int, pan: int) -> list[int]:
    """The portrait's offset in each frame of the moving clip: ``pan`` pixels a frame, 0 at the middle frame."""
    return [round(pan * (t - (frames - 1) / 2)) for t in range(frames)]


def make_clip(size: tuple[int, int], offsets: list[int], *, noise: float, crf: int, gop: int,
              seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The clean frames and their noisy, H.264-compressed versions (both uint8 RGB), one per offset.

    Args:
        size: (H, W) of the frames.
        offsets: the portrait's horizontal offset in each frame (all 0: a static scene).
        noise: standard deviation of the Gaussian noise, 0..255 units; shot noise (``SHOT``) comes on top.
        crf: x264's constant rate factor.
        gop: frames between intra frames.
        seed: seed of the noise.
    """
    from train.lowlight.codec import h264, to_uint8

    rng = np.random.default_rng(seed)
    scenes: dict[int, np.ndarray] = {}
    clean, noisy = [], []
    for dx in offsets:
        if dx not in scenes:
            scenes[dx] = _scene(size[0], size[1], dx)
        scene = scenes[dx]
        sigma = np.sqrt((noise / 255.0) ** 2 + SHOT**2 * scene)
        clean.append(to_uint8(scene))
        noisy.append(to_uint8(scene + sigma * rng.standard_normal(scene.shape, dtype=np.float32)))
    return clean, h264(noisy, crf=crf, gop=gop)


# ------------------------------------------------------------------------------------------- the face region


def face_region(rgb: np.ndarray, threads: int = 1) -> tuple[np.ndarray, str]:
    """The pixels the face mesh covers on ``rgb`` (uint8 RGB), and how they were found.

    Falls back to the middle half of the centred portrait when the face models are missing or find no face.
    """
    from train.facemesh import FaceMesh, FaceModelMissing, mesh_normals, triangles

    h, w = rgb.shape[:2]
    try:
        faces = FaceMesh(threads=threads).faces(rgb, max_faces=1)
        why = "no face found"
    except FaceModelMissing as exc:
        faces, why = [], f"face models missing: {exc}"
    if faces:
        _, mask = mesh_normals(faces[0].points, triangles(), h, w)
        if mask.sum() >= 16:
            return mask, f"face mesh ({int(mask.sum())} px)"
        why = "the face mesh covers under 16 pixels"
    mask = np.zeros((h, w), bool)
    x0 = (w - h) // 2
    mask[h // 4 : h - h // 4, max(0, x0 + h // 4) : x0 + h - h // 4] = True
    return mask, f"centre of the portrait ({int(mask.sum())} px; {why})"


def _shifted(mask: np.ndarray, dx: int) -> np.ndarray:
    """``mask`` moved ``dx`` pixels right (what leaves the frame is dropped)."""
    out = np.zeros_like(mask)
    w = mask.shape[1]
    if abs(dx) < w:
        if dx >= 0:
            out[:, dx:] = mask[:, : w - dx]
        else:
            out[:, :dx] = mask[:, -dx:]
    return out


# --------------------------------------------------------------------------------------------- the runtime


def relight_clip(runner, frames: list[np.ndarray], sh: np.ndarray, smoothing: float, denoise: float,
                 background: str = "keep") -> list[np.ndarray]:
    """Each uint8 RGB frame relit by ``Pipeline.process`` in order (the light history fed back exactly)."""
    from runtime import Pipeline
    from runtime.tasks import RelightTask

    task = RelightTask(lights=np.asarray(sh, np.float32)[None], background=background,
                       light_smoothing=smoothing, denoise=denoise)
    pipeline = Pipeline(runner, task)
    return [np.ascontiguousarray(pipeline.process(np.ascontiguousarray(f[..., ::-1]), i)[..., ::-1])
            for i, f in enumerate(frames)]


# --------------------------------------------------------------------------------------------- the figures


def _mad(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames over ``mask``'s pixels and the three channels (0..255)."""
    return float(np.abs(a[mask].astype(np.float32) - b[mask].astype(np.float32)).mean())


def _steps(frames: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """|frame t - frame t-1| for t = 1 .. len(frames) - 1."""
    return np.array([_mad(frames[t], frames[t - 1], mask) for t in range(1, len(frames))])


def _flicker(steps: np.ndarray, gop: int) -> dict:
    """Mean |frame t - frame t-1| over all steps, over the steps onto intra frames and over the others."""
    onto = np.arange(1, len(steps) + 1) % gop == 0
    part = lambda keep: float(steps[keep].mean()) if keep.any() else None
    return {"flicker": float(steps.mean()), "flicker_keyframes": part(onto), "flicker_between": part(~onto)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _drift(frames: list[np.ndarray], mask: np.ndarray) -> list[float]:
    return [_mad(f, frames[0], mask) for f in frames[1:]]


def measure(runner, static: list[np.ndarray], mask: np.ndarray, sh: np.ndarray, gop: int,
            moving: list[np.ndarray] | None = None, masks: list[np.ndarray] | None = None) -> dict:
    """Every row's figures on the static clip (and the moving one, with one face mask per frame).

    A ratio is None where the input does not change at all over the steps it counts (none onto an intra frame
    in a clip shorter than ``gop`` + 1 frames).

    Returns:
        ``{"input": {...}, "rows": [...], "strip_frame": t, "outputs": {name: static output frames t - 1 and t}}``
        with t the step where the input changes the most (the first intra frame after frame 0, if any).
    """
    steps = _steps(static, mask)
    flicker_in = _flicker(steps, gop)
    drift_in = _drift(static, mask)
    result = {"input": {**flicker_in, "drift_mean": float(np.mean(drift_in)), "drift_max": float(np.max(drift_in))},
              "rows": [], "outputs": {}}
    result["strip_frame"] = t = int(np.argmax(steps)) + 1
    reference = None
    for name, smoothing, denoise in ROWS:
        start = time.perf_counter()
        out = relight_clip(runner, static, sh, smoothing, denoise)
        flicker, drift = _flicker(_steps(out, mask), gop), _drift(out, mask)
        row = {"name": name, "light_smoothing": smoothing, "denoise": denoise,
               **{f"{k}_ratio": _ratio(v, flicker_in[k]) for k, v in flicker.items()}, **flicker,
               "drift_mean": float(np.mean(drift)), "drift_max": float(np.max(drift)),
               "effect": float(np.mean([_mad(o, i, mask) for o, i in zip(out, static)]))}
        if moving is not None:
            moved = relight_clip(runner, moving, sh, smoothing, denoise)
            if reference is None:
                reference = moved  # the first row has no smoothing: the reference of the lag
            lag = [_mad(o, r, m) for o, r, m in zip(moved, reference, masks)]
            row.update(lag_mean=float(np.mean(lag)), lag_max=float(np.max(lag)),
                       moving_effect=float(np.mean([_mad(o, i, m) for o, i, m in zip(moved, moving, masks)])))
        row["seconds"] = time.perf_counter() - start
        result["rows"].append(row)
        result["outputs"][name] = out[t - 1 : t + 1]
    return result


def table(result: dict) -> str:
    """The figures as a Markdown table (ratios to the input's figure; absolute figures in brackets)."""
    def cell(ratio, value) -> str:
        return "-" if value is None else (f"{ratio:.2f} ({value:.3f})" if ratio is not None else f"- ({value:.3f})")

    moving = "lag_mean" in result["rows"][0]
    head = ("| setting | smoothing | denoise | flicker / input | onto intra frames | between them | "
            "drift from frame 0 (max) | effect |")
    rule = "|---|---|---|---|---|---|---|---|"
    if moving:
        head, rule = head + " lag, moving (max) |", rule + "---|"
    i = result["input"]
    lines = [head, rule, f"| input clip | - | - | {cell(1.0, i['flicker'])} | "
                         f"{cell(1.0 if i['flicker_keyframes'] else None, i['flicker_keyframes'])} | "
                         f"{cell(1.0 if i['flicker_between'] else None, i['flicker_between'])} | "
                         f"{i['drift_mean']:.2f} ({i['drift_max']:.2f}) | 0 |" + (" - |" if moving else "")]
    for r in result["rows"]:
        line = (f"| {r['name']} | {r['light_smoothing']:g} | {r['denoise']:g} | "
                f"{cell(r['flicker_ratio'], r['flicker'])} | "
                f"{cell(r['flicker_keyframes_ratio'], r['flicker_keyframes'])} | "
                f"{cell(r['flicker_between_ratio'], r['flicker_between'])} | "
                f"{r['drift_mean']:.2f} ({r['drift_max']:.2f}) | {r['effect']:.2f} |")
        if moving:
            line += f" {r['lag_mean']:.2f} ({r['lag_max']:.2f}) |"
        lines.append(line)
    return "\n".join(lines)


def write_strip(path: str | os.PathLike, inputs: list[np.ndarray], outputs: dict[str, list[np.ndarray]],
                mask: np.ndarray, frame: int) -> Path:
    """Input and output frames ``frame`` (``inputs`` and each of ``outputs``: frames ``frame - 1`` and ``frame``)
    over their amplified ``|frame t - frame t-1|``; the face region outlined on the input."""
    import cv2

    from train.data.images import write_image

    def diff(pair: list[np.ndarray]) -> np.ndarray:
        d = np.abs(pair[-1].astype(np.float32) - pair[-2].astype(np.float32)).mean(axis=-1) * AMPLIFY
        return np.repeat(np.clip(d, 0, 255)[..., None], 3, axis=-1).astype(np.uint8)

    first = inputs[-1].copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(first, contours, -1, (255, 255, 0), 1)
    top = [("input", first)] + [(name, pair[-1]) for name, pair in outputs.items()]
    bottom = [("input", diff(inputs[-2:]))] + [(name, diff(pair)) for name, pair in outputs.items()]
    h, w = first.shape[:2]
    scale = min(1.0, 320 / w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    label = max(14, th // 12)
    strip = np.full((2 * (th + label), tw * len(top), 3), 255, np.uint8)
    for r, tiles in enumerate((top, bottom)):
        for c, (name, tile) in enumerate(tiles):
            y = r * (th + label)
            strip[y + label : y + label + th, c * tw : (c + 1) * tw] = cv2.resize(tile, (tw, th),
                                                                                 interpolation=cv2.INTER_AREA)
            text = f"{name}, frame {frame}" if r == 0 else f"{name}: |{frame} - {frame - 1}| x{AMPLIFY:g}"
            cv2.putText(strip, text, (c * tw + 3, y + label - 4), cv2.FONT_HERSHEY_SIMPLEX, label / 36, (0, 0, 0),
                        1, cv2.LINE_AA)
    write_image(path, strip.astype(np.float32) / 255.0)
    return Path(path)


# ------------------------------------------------------------------------------------------------- the CLI


def build_parser() -> ArgumentParser:
    from runtime.backends import list_backends

    p = ArgumentParser(prog="python -m benchmarks.relight_video", description=__doc__.split("\n\n")[0] + "\n\n"
                       + __doc__.split("\n\n", 2)[2].replace("``", ""))
    p.add_argument("--model", required=True, metavar="PATH",
                   help="a relight model the runtime accepts: an export folder, an ONNX file or a checkpoint")
    p.add_argument("--frames", type=bounded_int(2, 10_000), default=60, help="frames of each clip")
    p.add_argument("--size", type=image_size, default="360x640", metavar="HxW",
                   help="frame size; the portrait is H x H in the middle (W >= H)")
    p.add_argument("--sh", default="left", metavar="NAME",
                   help="the target SH light: front, left, right, top, bottom, ambient")
    p.add_argument("--pan", type=bounded_int(0, 64), default=2, metavar="PX",
                   help="pixels the portrait moves per frame in the moving clip (0: no moving clip, no lag)")
    p.add_argument("--noise", type=bounded_float(0.0, 64.0), default=2.5, metavar="SIGMA",
                   help="Gaussian sensor noise per frame, 0..255 units (shot noise of 2/255 at white on top)")
    p.add_argument("--crf", type=bounded_int(0, 51), default=28, help="x264 constant rate factor of the clips")
    p.add_argument("--gop", type=bounded_int(1, 1000), default=30, help="frames between the clips' intra frames")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the noise")
    p.add_argument("--backend", choices=["auto", *list_backends()], default="auto",
                   help="auto: by the model's suffix (an export folder: its engine if TensorRT can run here, else "
                        "ONNX Runtime)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="CPU threads for ONNX Runtime or PyTorch, and for the face models (default: the libraries' "
                        "own; the face models 1)")
    p.add_argument("--out", type=Path, default=Path("runs/relight_video.json"), metavar="PATH",
                   help="where the figures go (JSON)")
    p.add_argument("--strip", type=Path, default=None, metavar="PNG",
                   help="also write an image strip: input and outputs over their amplified frame differences")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    height, width = args.size
    if width < height:
        raise UserError(f"--size {height}x{width}: the frame must be at least as wide as it is high")

    from runtime import load
    from runtime.core.io import write_json
    from runtime.core.lighting import sh_preset
    from runtime.tasks import RelightTask

    try:
        sh = sh_preset(args.sh)
    except ValueError as exc:
        raise UserError(f"--sh: {exc}") from None
    runner = load(args.model, args.backend, threads=args.threads)
    RelightTask(lights=sh[None]).check(runner)  # a model of another task or light: one line, before any work

    clip = {"noise": args.noise, "crf": args.crf, "gop": args.gop}
    clean, static = make_clip(args.size, [0] * args.frames, **clip, seed=args.seed)
    mask, region = face_region(clean[0], threads=args.threads or 1)
    moving = masks = None
    offsets = pan_offsets(args.frames, args.pan) if args.pan else []
    if args.pan:
        _, moving = make_clip(args.size, offsets, **clip, seed=args.seed + 1)
        masks = [_shifted(mask, dx) for dx in offsets]

    with runner:
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {runner.name} on "
              f"{runner.backend} ({runner.device}); {height}x{width}, {args.frames} frames, H.264 CRF {args.crf} "
              f"GOP {args.gop}, noise {args.noise:g}/255 + shot; --sh {args.sh} --background keep; region: {region}\n")
        result = measure(runner, static, mask, sh, args.gop, moving, masks)
        backend, device, name = runner.backend, runner.device, runner.name

    outputs, frame = result.pop("outputs"), result.pop("strip_frame")
    report = {
        "model": str(args.model), "name": name, "backend": backend, "device": str(device),
        "feedback": "Pipeline.process per frame: the light estimate of frame i is the history of frame i + 1",
        "clip": {"size": [height, width], "frames": args.frames, "portrait": [height, height],
                 "source": "skimage.data.astronaut", "noise": args.noise, "shot_noise_at_white": SHOT * 255,
                 "codec": "libx264", "crf": args.crf, "gop": args.gop, "seed": args.seed, "pan_px_per_frame": args.pan,
                 "region": region, "region_pixels": int(mask.sum())},
        "sh": args.sh, "background": "keep", **result,
    }
    write_json(args.out, report)
    print(table(report))
    print(f"\nflicker: mean |frame t - frame t-1| over the face region (0..255) as a ratio to the input's, the "
          f"figure in brackets; drift: mean |frame t - frame 0|; effect: mean |output - input|; lag: mean |output - "
          f"off's output| on the moving clip\nwrote {args.out}", end="")
    if args.strip is not None:
        write_strip(args.strip, static[frame - 1 : frame + 1], outputs, mask, frame)
        print(f", {args.strip}", end="")
    print()
    return 0


main.prog = "python -m benchmarks.relight_video"  # type: ignore[attr-defined]


if __name__ == "__main__":
    from runtime.core.cli import run

    raise SystemExit(run(main))
