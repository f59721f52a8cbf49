"""The real-time models export to ONNX with dynamic height and width and match PyTorch in ONNX Runtime."""

import numpy as np
import pytest
import torch

from train.models import create_model

ort = pytest.importorskip("onnxruntime")


def _export(model, inputs, names, path):
    dims = {name: {2: torch.export.Dim("height", min=4, max=4096), 3: torch.export.Dim("width", min=4, max=4096)}
            for name in names}
    program = torch.onnx.export(model, inputs, dynamo=True, input_names=list(names), dynamic_shapes=dims)
    program.save(str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["lowlight_edge", "lowlight_edgetest", "lowlight_edgetest_v1", "lowlight_zerodce"])
def test_lowlight_edge_exports_with_dynamic_size(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():  # away from the near-identity start, so every layer shows in the output
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    session = _export(model, (torch.rand(1, 3, 64, 96),), ["image"], tmp_path / "m.onnx")
    for h, w in ((64, 96), (45, 81), (128, 72)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"image": x.numpy()})
        assert got.shape == (1, 3, h, w)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_unet_exports_with_dynamic_size(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet_test").eval()
    names = ["distances", "cosines", "albedo", "normals"]

    def inputs(h, w):
        g = torch.Generator().manual_seed(h * w)
        return (torch.rand(1, 1, h, w, generator=g) + 1, torch.rand(1, 1, h, w, generator=g),
                torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g))

    session = _export(model, inputs(32, 48), names, tmp_path / "u.onnx")
    for h, w in ((32, 48), (37, 53)):
        x = inputs(h, w)
        with torch.no_grad():
            expected = model(*x).numpy()
        (got,) = session.run(None, dict(zip(names, (t.numpy() for t in x))))
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("overrides", [{}, {"downsample": 2, "skip": True, "albedo_from_image": True,
                                               "light_moments": True}], ids=["seed-structure", "edge-structure"])
def test_sfsnet_exports_with_dynamic_size_and_five_named_outputs(overrides, tmp_path):
    torch.manual_seed(0)
    model = create_model("sfsnet_test", **overrides).eval()
    names = ["normals", "albedo", "sh", "residue", "reconstruction"]
    dims = {"image": {2: torch.export.Dim("height", min=8, max=4096), 3: torch.export.Dim("width", min=8, max=4096)}}
    program = torch.onnx.export(model, (torch.rand(1, 3, 64, 64),), dynamo=True, input_names=["image"],
                                output_names=names, dynamic_shapes=dims)
    program.save(str(tmp_path / "s.onnx"))
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == names
    for h, w in ((64, 64), (45, 81)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {"image": x.numpy()})
        for name, e, g in zip(names, expected, got):
            np.testing.assert_allclose(g, e.numpy(), atol=1e-4, err_msg=name)
