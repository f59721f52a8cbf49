import numpy as np
import pytest

from train.unet.data import (
    PatchRelightingDataset, check_arrays, fit_light_intensity, load_dataset, save_dataset, split_arrays,
)
from train.data.render import RenderConfig, lambertian_baseline, render_dataset
from runtime.core.errors import DatasetError


@pytest.fixture(scope="module")
def arrays():
    data = render_dataset(4, seed=0, cfg=RenderConfig(height=40, width=48), workers=1)
    data.pop("lights")
    return data


def test_round_trip_through_the_disk_format(tmp_path, arrays):
    path = save_dataset(tmp_path / "set", {"train": arrays, "val": arrays}, {"light_intensity": 4.0})
    splits, meta = load_dataset(path)
    assert set(splits) == {"train", "val"} and meta["light_intensity"] == 4.0
    for name, value in arrays.items():
        np.testing.assert_array_equal(splits["train"][name], value)


def test_arrays_at_the_top_level_are_the_training_split(tmp_path, arrays):
    tmp_path.joinpath("flat").mkdir()
    for name, value in arrays.items():
        np.save(tmp_path / "flat" / f"{name}.npy", value)
    splits, _ = load_dataset(tmp_path / "flat")
    assert list(splits) == ["train"]


def test_save_refuses_an_existing_folder(tmp_path, arrays):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        save_dataset(tmp_path / "taken", {"train": arrays})


def test_a_failed_save_leaves_nothing_behind(tmp_path, arrays, monkeypatch):
    calls = []

    def failing_save(path, value):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("No space left on device")
        np.lib.format.write_array(open(path, "wb"), value)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        save_dataset(tmp_path / "new", {"train": arrays})
    assert list(tmp_path.iterdir()) == []


def test_save_checks_the_arrays_first(tmp_path, arrays):
    with pytest.raises(DatasetError, match="missing array"):
        save_dataset(tmp_path / "new", {"train": {"distances": arrays["distances"]}})
    assert list(tmp_path.iterdir()) == []


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist: .*nowhere"):
        load_dataset(tmp_path / "nowhere")


def test_missing_array_is_named(tmp_path, arrays):
    path = save_dataset(tmp_path / "set", {"train": arrays})
    (path / "train" / "normals.npy").unlink()
    with pytest.raises(DatasetError, match="missing array\\(s\\) normals"):
        load_dataset(path)


def test_mismatched_arrays_are_named(arrays):
    bad = dict(arrays, targets=arrays["targets"][:3])
    with pytest.raises(DatasetError, match="targets has 3 samples"):
        check_arrays(bad)
    bad = dict(arrays, normals=arrays["normals"][..., :2])
    with pytest.raises(DatasetError, match="normals has 2 channels"):
        check_arrays(bad)
    bad = dict(arrays, cosines=np.full_like(arrays["cosines"], np.nan))
    with pytest.raises(DatasetError, match="cosines contains NaN"):
        check_arrays(bad)


def test_corrupt_array_file_is_named(tmp_path, arrays):
    path = save_dataset(tmp_path / "set", {"train": arrays})
    (path / "train" / "albedo.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match="albedo.npy"):
        load_dataset(path)


def test_patch_size_follows_image_size_and_patch_count():
    data = render_dataset(2, seed=0, cfg=RenderConfig(height=64, width=64), workers=1)
    ds = PatchRelightingDataset(data, num_patches=4)
    assert ds.patch_size == (32, 32) and len(ds) == 2 * 4
    ds = PatchRelightingDataset(data, num_patches=16)
    assert ds.patch_size == (16, 16) and len(ds) == 2 * 16
    item = ds[5]
    assert item["albedo"].shape == (3, 16, 16) and item["distances"].shape == (1, 16, 16)
    # patches tile the image: patch 5 of image 0 is row 1, column 1
    np.testing.assert_array_equal(item["targets"].numpy(), data["targets"][0, 16:32, 16:32].transpose(2, 0, 1))


def test_jittered_patches_stay_inside_the_image(arrays):
    ds = PatchRelightingDataset(arrays, num_patches=6, jitter=True, seed=1)
    for i in range(len(ds)):
        assert ds[i]["targets"].shape[1:] == ds.patch_size


def test_whole_image_mode(arrays):
    ds = PatchRelightingDataset(arrays, num_patches=None)
    assert len(ds) == 4 and ds[0]["targets"].shape == (3, 40, 48)


def test_split_and_fitted_intensity(arrays):
    train, val = split_arrays(arrays, (0.25,), seed=0)
    assert len(train["distances"]) == 3 and len(val["distances"]) == 1
    fitted = fit_light_intensity(arrays)

    def baseline_mse(intensity):
        image = lambertian_baseline(arrays["distances"][..., None], arrays["cosines"][..., None], arrays["albedo"], intensity)
        keep = arrays["targets"] < 0.98
        return float(((image - arrays["targets"])[keep] ** 2).mean())

    # The fit gives the baseline its best intensity: better than the renderer's own (4.0) and than its neighbours.
    assert baseline_mse(fitted) <= min(baseline_mse(4.0), baseline_mse(0.9 * fitted), baseline_mse(1.1 * fitted))
