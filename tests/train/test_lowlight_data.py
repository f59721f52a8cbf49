import numpy as np
import pytest

from train.data.images import read_image, write_image
from train.lowlight.data import (PairDataset, SyntheticPairs, auto_expose, camera_degrade, compress_frame, degrade,
                                  find_pairs, photo_split)
from runtime.core.errors import DatasetError


def _pair_folder(folder, names, high_names=None, size=(24, 32)):
    rng = np.random.default_rng(0)
    for sub, files in (("low", names), ("high", high_names if high_names is not None else names)):
        for name in files:
            write_image(folder / sub / name, rng.random((*size, 3)).astype(np.float32))


def test_seed_layout_with_several_subsets(tmp_path):
    _pair_folder(tmp_path / "1_train" / "LOLv1", ["a.png", "b.png"])
    _pair_folder(tmp_path / "1_train" / "mine", ["c.png"])
    pairs = find_pairs(tmp_path, "train")
    assert [(p.subset, p.low.name, p.high.name) for p in pairs] == [
        ("LOLv1", "a.png", "a.png"), ("LOLv1", "b.png", "b.png"), ("mine", "c.png", "c.png")]


def test_lol_v1_layout(tmp_path):
    _pair_folder(tmp_path / "our485", ["1.png", "2.png"])
    _pair_folder(tmp_path / "eval15", ["9.png"])
    assert len(find_pairs(tmp_path, "train")) == 2
    assert [p.low.name for p in find_pairs(tmp_path, "bench")] == ["9.png"]


def test_mismatched_pairs_are_named(tmp_path):
    _pair_folder(tmp_path / "2_valid" / "x", ["a.png", "b.png", "c.png"], high_names=["a.png", "d.png"])
    with pytest.raises(DatasetError, match=r"2 low image\(s\) without a high one: b.png, c.png; "
                                           r"1 high image\(s\) without a low one: d.png"):
        find_pairs(tmp_path, "valid")


def test_missing_layout_and_missing_high(tmp_path):
    with pytest.raises(DatasetError, match="expected 1_train/<subset>/low,high"):
        find_pairs(tmp_path, "train")
    _pair_folder(tmp_path / "4_infer" / "x", ["a.png"], high_names=[])
    assert find_pairs(tmp_path, "infer", require_high=False)[0].high is None
    with pytest.raises(DatasetError, match="no high/ folder"):
        find_pairs(tmp_path, "infer")


def test_unreadable_image_and_size_mismatch(tmp_path):
    _pair_folder(tmp_path / "3_bench" / "x", ["a.png", "b.png"])
    (tmp_path / "3_bench" / "x" / "low" / "a.png").write_bytes(b"not a png")
    write_image(tmp_path / "3_bench" / "x" / "high" / "b.png", np.zeros((10, 10, 3), np.float32))
    dataset = PairDataset(find_pairs(tmp_path, "bench"))
    with pytest.raises(DatasetError, match="cannot read image .*a.png"):
        dataset[0]
    with pytest.raises(DatasetError, match="b.png: low is 32x24 but high is 10x10"):
        dataset[1]


def test_images_round_trip_through_8_bit_files(tmp_path):
    image = np.random.default_rng(1).random((8, 12, 3)).astype(np.float32)
    write_image(tmp_path / "x.png", image)
    np.testing.assert_allclose(read_image(tmp_path / "x.png"), image, atol=0.5 / 255 + 1e-6)


def test_degradation_is_darker_noisier_and_reproducible():
    clean = photo_split("test")[0][:128, :128]
    a = degrade(clean, np.random.default_rng(5))
    b = degrade(clean, np.random.default_rng(5))
    c = degrade(clean, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.mean() < 0.7 * clean.mean()
    # noise: the degraded image, brightened back to the clean one's level, is rougher where the clean one is flat
    flat = np.s_[:16, :16]
    assert (a / a.mean())[flat].std() > (clean / clean.mean())[flat].std()
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-3)  # quantised to 8 bits


def test_photo_splits_share_no_pixels():
    """Test photos are never seen in training or validation; validation strips are cut from
    training photos but share no pixel with the training parts."""
    train, valid, test = (photo_split(s) for s in ("train", "valid", "test"))
    assert train and valid and test
    for t in test:
        assert not any(np.shares_memory(t, p) for p in train + valid)
    for p in train:
        assert not any(np.shares_memory(p, v) for v in valid)


def test_synthetic_pairs_fixed_sets_repeat():
    ds = SyntheticPairs(photo_split("valid"), length=3, size=32, seed=7, fixed=True)
    first, again = ds[1], ds[1]
    assert first["low"].shape == (3, 32, 32)
    assert (first["low"] == again["low"]).all() and (first["high"] == again["high"]).all()


def _block_ratio(image: np.ndarray) -> float:
    """Mean squared step across 8-pixel block boundaries over the mean squared step elsewhere (luma, columns)."""
    y = image.mean(axis=-1)
    steps = np.diff(y, axis=1) ** 2
    boundary = np.zeros(steps.shape[1], bool)
    boundary[7::8] = True
    return float(steps[:, boundary].mean() / steps[:, ~boundary].mean())


def test_camera_degradation_covers_dark_to_normal_and_compresses():
    """Dark draws are darker than the reference and their target is the clean photo; a normal-exposure
    draw is its own target (to be left alone); compression leaves the 8x8 block grid in flat dark areas."""
    clean = auto_expose(photo_split("test")[0][:128, :128], np.random.default_rng(0))
    targets_equal_input, darker = 0, 0
    for seed in range(24):
        low, target = camera_degrade(clean, np.random.default_rng(seed))
        assert low.shape == clean.shape and low.dtype == np.float32 and 0.0 <= low.min() and low.max() <= 1.0
        if np.array_equal(low, target):
            targets_equal_input += 1
        else:
            np.testing.assert_array_equal(target, clean)
            darker += low.mean() < 0.8 * clean.mean()
    assert 2 <= targets_equal_input <= 12 and darker >= 10
    low, target = camera_degrade(clean, np.random.default_rng(1), exposure=1.0, compress=False)
    assert np.array_equal(low, target) and 20 < 10 * np.log10(1 / np.mean((low - clean) ** 2)) and abs(low.mean() - clean.mean()) < 0.1
    dark, _ = camera_degrade(clean, np.random.default_rng(1), exposure=0.03, compress=False)
    assert dark.mean() < 0.5 * clean.mean()
    flat_dark = np.full((64, 64, 3), 0.08, np.float32) + np.random.default_rng(0).normal(0, 0.02, (64, 64, 3)).astype(np.float32)
    rng = np.random.default_rng(3)
    ratios = [_block_ratio(compress_frame(flat_dark, rng)) for _ in range(8)]
    assert _block_ratio(flat_dark) < 1.3 and np.median(ratios) > 1.5


def test_h264_compression_keeps_odd_sizes():
    pytest.importorskip("av")
    from train.lowlight.codec import h264_intra

    image = (photo_split("test")[1][:37, :53] * 255).astype(np.uint8)
    out = h264_intra(image, 30, "veryfast")
    assert out.shape == (37, 53, 3) and 25 < 10 * np.log10(1 / np.mean((out - image / 255.0) ** 2))


def test_synthetic_pairs_take_the_classic_degradation_too():
    photos = photo_split("valid")
    camera = SyntheticPairs(photos, length=2, size=32, seed=7, fixed=True)[0]
    classic = SyntheticPairs(photos, length=2, size=32, seed=7, fixed=True, degradation="classic")[0]
    assert camera["low"].shape == classic["low"].shape and not (camera["low"] == classic["low"]).all()
    with pytest.raises(ValueError, match="unknown degradation 'film'"):
        SyntheticPairs(photos, length=2, size=32, degradation="film")


def test_dataloader_workers_draw_different_pairs():
    from torch.utils.data import DataLoader

    pairs = SyntheticPairs(photo_split("train"), length=8, size=16, seed=3, degradation="classic")
    batches = list(DataLoader(pairs, batch_size=1, num_workers=2, multiprocessing_context="spawn"))
    lows = [b["low"][0] for b in batches]
    assert all(not (lows[i] == lows[j]).all() for i in range(len(lows)) for j in range(i))
