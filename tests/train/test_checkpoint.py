import pytest
import torch

from train.checkpoint import FORMAT, load_checkpoint, save_checkpoint, update_metadata
from runtime.core.errors import CheckpointError
from train.models import create_model


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(1, 1, 24, 24, generator=g) + 1, torch.rand(1, 1, 24, 24, generator=g),
            torch.rand(1, 3, 24, 24, generator=g), torch.rand(1, 3, 24, 24, generator=g))


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet_test", albedo_channels=3)
    # Move the BatchNorm statistics away from their defaults so they are checked too.
    model.train()
    with torch.no_grad():
        model(*_inputs())
    model.eval()
    path = save_checkpoint(tmp_path / "m.ckpt", model, data={"source": "synthetic"}, metrics={"val": {"psnr": 30.0}})
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(*_inputs()), model(*_inputs()), rtol=0, atol=0)
    assert meta["format"] == FORMAT
    assert (meta["name"], meta["family"], meta["preset"]) == ("unet_test", "unet", "test")
    assert meta["config"]["widths"] == list(model.config.widths)
    assert [i["name"] for i in meta["contract"]["inputs"]] == ["distances", "cosines", "albedo", "normals"]
    assert meta["contract"]["outputs"][0]["channels"] == 3
    assert meta["data"] == {"source": "synthetic"} and meta["metrics"]["val"]["psnr"] == 30.0
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_config_overrides_survive_the_round_trip(tmp_path):
    model = create_model("unet_test", albedo_channels=1).eval()
    loaded, meta = load_checkpoint(save_checkpoint(tmp_path / "grey.ckpt", model))
    assert loaded.conv_albedo.in_channels == 1 and meta["contract"]["inputs"][2]["channels"] == 1


def test_a_run_folder_loads_its_best_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "best.ckpt", create_model("unet_test"))
    model, meta = load_checkpoint(tmp_path)
    assert meta["name"] == "unet_test"


def test_update_metadata_merges(tmp_path):
    path = save_checkpoint(tmp_path / "m.ckpt", create_model("unet_test"), metrics={"val": {"psnr": 1.0}})
    update_metadata(path, metrics={"test": {"psnr": 2.0}})
    _, meta = load_checkpoint(path)
    assert meta["metrics"] == {"val": {"psnr": 1.0}, "test": {"psnr": 2.0}}
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_corrupt_or_truncated_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.ckpt", create_model("unet_test"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"is not a readable checkpoint \(the file is truncated or damaged\)"):
        load_checkpoint(path)
    for content in (b"hello", b"", b"\x80\x04" + bytes(range(256)) * 8):
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match="is not a readable checkpoint") as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "weights_only" not in message and "\n" not in message and len(message) < 300


def test_foreign_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an edgelight checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_unknown_model_in_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "m.ckpt", create_model("unet_test"))
    payload = torch.load(path, weights_only=True)
    payload["edgelight"]["name"] = "unet_missing"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unknown model 'unet_missing'"):
        load_checkpoint(path)
