"""Faults a user meets with python -m runtime: a full disk, signals, a swapped sidecar, two writers to one
output, odd and mixed frame sizes, and a killed run's temporary files. Each asserts the exit code, the one
line on stderr and what is (and is not) on disk."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.core.errors import ModelError, UserError
from runtime.core.io import OutputExistsError
from runtime.democlip import make_demo_clip
from runtime.video import open_sink
from runtime.video.ffmpeg import written_frames

ROOT = Path(__file__).resolve().parents[2]


def _runtime(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_demo_clip(tmp_path_factory.mktemp("clip") / "dark.mp4", kind="lowlight", frames=12, size=(48, 64))


def test_a_full_disk_fails_loudly_and_leaves_nothing(exported_lowlight, clip, small_disk):
    big = make_demo_clip(small_disk.parent / "big.mp4", kind="lowlight", frames=60, size=(240, 320))
    out = small_disk / "out.mp4"
    proc = _runtime("enhance", "--model", str(exported_lowlight / "export"), "--input", str(big), "--output",
                    str(out), "--quiet")
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert str(out) in line and "no space left on device" in line
    assert "frames to" not in proc.stdout  # never a success line for a broken result
    assert list(small_disk.iterdir()) == []  # neither out.mp4 nor a temporary

    with open(small_disk / "filler", "wb", buffering=0) as f:  # now fill the disk: not even a small JSON fits
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    stats = small_disk / "stats.json"
    proc = _runtime("enhance", "--model", str(exported_lowlight / "export"), "--input", str(clip), "--stats",
                    str(stats), "--quiet")
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert str(stats) in line and "no space left on device" in line
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_stops_cleanly_and_finalises_what_was_done(exported_lowlight, tmp_path, sig, code):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1000):  # an image folder long enough to be stopped in the middle
        cv2.imwrite(str(frames / f"{i:04d}.png"), np.full((48, 64, 3), i % 256, np.uint8))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "enhance", "--model", str(exported_lowlight / "export"),
                             "--input", str(frames), "--output", str(out), "--quiet", "--fps", "20"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".out.mp4.") for p in tmp_path.iterdir()):
        time.sleep(0.02)  # the temporary video exists: the model is loaded, frames are on their way
    time.sleep(0.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    line = _one_line(stderr)
    assert f"interrupted ({sig.name}) after" in line
    done = int(line.split("after ")[1].split()[0])
    assert 0 < done < 1000
    assert written_frames(out) == (done, (48, 64))  # finalised: a valid file with every processed frame
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_swapped_sidecar_is_one_line_naming_both_files(exported_lowlight, clip, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(exported_lowlight / "export", export)
    shutil.copyfile(export / "model.fp16.onnx", export / "model.onnx")  # the FP32 sidecar now describes another file
    proc = _runtime("enhance", "--model", str(export / "model.onnx"), "--input", str(clip), "--output",
                    str(tmp_path / "out.mp4"))
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert "model.onnx does not match its sidecar model.onnx.json" in line and "bytes" in line
    assert not (tmp_path / "out.mp4").exists()
    # Same size, other bytes: the SHA-256 catches it (and a second load reads the cached digest of the good file).
    data = bytearray((exported_lowlight / "export" / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (export / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="its SHA-256 differs from the one recorded"):
        from runtime import load

        load(export / "model.onnx")


def test_two_writers_to_one_new_output_never_overwrite_each_other(tmp_path):
    frame_a, frame_b = np.full((32, 48, 3), 40, np.uint8), np.full((32, 48, 3), 200, np.uint8)
    for target in (tmp_path / "out.mp4", tmp_path / "frames"):
        first, second = open_sink(target, fps=10), open_sink(target, fps=10)  # both start before either ends
        for _ in range(3):
            first.write(frame_a)
            second.write(frame_b)
        first.close()
        with pytest.raises(OutputExistsError, match="appeared while this run was writing it"):
            second.close()
        if target.suffix:
            assert written_frames(target) == (3, (32, 48))
            capture = cv2.VideoCapture(str(target))
            assert abs(float(capture.read()[1].mean()) - 40) < 5  # the first run's frames, untouched
        else:
            assert sorted(p.name for p in target.iterdir()) == [f"frame_{i:06d}.png" for i in range(3)]
            assert cv2.imread(str(target / "frame_000000.png")).mean() == 40
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_odd_sizes_are_refused_with_the_reason_and_folders_keep_every_size(exported_lowlight, tmp_path, caplog):
    sink = open_sink(tmp_path / "odd.mp4", fps=10)
    with pytest.raises(UserError, match=r"at 37x51: OpenCV's video writer makes even sizes only and would crop it "
                                        r"to 36x50"):
        sink.write(np.zeros((37, 51, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    folder = tmp_path / "mixed"
    folder.mkdir()
    sizes = [(48, 64), (37, 51), (64, 80)]
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((h, w, 3), 30, np.uint8))
    proc = _runtime("enhance", "--model", str(exported_lowlight / "export"), "--input", str(folder), "--output",
                    str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert [cv2.imread(str(p)).shape[:2] for p in sorted((tmp_path / "out").iterdir())] == sizes
    proc = _runtime("enhance", "--model", str(exported_lowlight / "export"), "--input", str(folder), "--output",
                    str(tmp_path / "out.mp4"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("are resized to the video's 48x64") == 1  # warned once, for the 37x51 and 64x80 frames
    assert written_frames(tmp_path / "out.mp4") == (3, (48, 64))


def test_a_killed_runs_temporaries_are_removed_by_the_next_run(exported_lowlight, clip, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    stale = [tmp_path / f".out.mp4.edgelight-{pid}-abc123.tmp.mp4", tmp_path / f".out.mp4.edgelight-{pid}-x.tmp"]
    for path in stale:
        path.write_bytes(b"half a video")
    live = tmp_path / f".out.mp4.edgelight-{os.getpid()}-mine.tmp.mp4"  # a live process's: left alone
    live.write_bytes(b"in progress")
    proc = _runtime("enhance", "--model", str(exported_lowlight / "export"), "--input", str(clip), "--output",
                    str(tmp_path / "out.mp4"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in stale) and live.exists()
    assert written_frames(tmp_path / "out.mp4")[0] == 12
