import numpy as np
import onnx
import pytest
import torch

from harness.checking.numerics import compare
from harness.checking.reference import zoo_reference
from harness.core.errors import ConvtxError, UnknownNameError
from harness.pipeline.export import export_zoo
from models import MODELS, get_model, parse_model_ref


def test_registry_lookups():
    assert set(MODELS) >= {"cae", "unet"}
    with pytest.raises(UnknownNameError, match="known: cae, dcgan"):
        get_model("nope")
    spec, size = parse_model_ref("unet@128")
    assert spec.name == "unet" and size == 128
    assert parse_model_ref("cae")[1] == MODELS["cae"].sizes[0]
    with pytest.raises(ConvtxError, match="multiple of 16"):
        parse_model_ref("unet@40")
    with pytest.raises(ConvtxError, match="not a power of two"):
        parse_model_ref("dcgan@48")


def test_the_zoo_covers_both_families_and_1d_2d_3d():
    fams = {s.family for s in MODELS.values()}
    assert {"autoencoder", "segmentation"} <= fams
    assert sum(1 for s in MODELS.values() if s.family in ("autoencoder", "segmentation")) >= 10
    assert {s.dims for s in MODELS.values()} == {1, 2, 3}
    for s in MODELS.values():
        for size in s.sizes:
            s.check_size(size)


# Output channels as each architecture defines them (models/*.py, the registry's descriptions), written down
# here so that a shape check cannot take its expectation from the output it checks.
OUT_CHANNELS = {
    "cae": 3,  # reconstructs its RGB input
    "dcgan": 3,  # RGB image, tanh
    "vae": 3,  # RGB image
    "wave1d": 1,  # mono waveform
    "fcn8s": 21,  # PASCAL VOC's 21 classes
    "unet": 5,  # models/unet.py CLASSES
    "segnet": 5,  # models/segnet.py CLASSES
    "segnet_noidx": 5,  # the same network
    "subpixel": 5,  # models/subpixel.py CLASSES
    "dwdecoder": 5,  # models/depthwise.py CLASSES
    "vol3d": 3,  # 1x1x1 Conv3d to 3 classes
    "unet_up": 16,  # ConvTranspose 32 -> 16
    # models/unpool.py CLASSES, every variant the same network
    "unpool_nearest": 5,
    "unpool_nearest_ct": 5,
    "unpool_nails": 5,
    "unpool_nails_ct": 5,
    "unpool_max": 5,
}


def test_every_model_has_a_written_down_output_width():
    assert set(OUT_CHANNELS) == set(MODELS)


def _expected_shape(spec, size: int, batch: int) -> tuple[int, ...]:
    return (batch, OUT_CHANNELS[spec.name], *((size,) * spec.dims))


def _convs(module, cls):
    return [m for m in module.modules() if isinstance(m, cls)]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch", [1, 2])
def test_every_model_builds_and_runs_at_its_small_size(name, batch):
    spec = MODELS[name]
    size = spec.sizes[0]
    shapes = spec.inputs(size, batch)
    module = spec.build(size, seed=0)
    args = [torch.randn(s) for s in shapes.values()]
    with torch.inference_mode():
        y = module(*args)
    assert tuple(y.shape) == _expected_shape(spec, size, batch)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_exports_and_onnx_agrees_with_pytorch(name, tmp_path):
    """The exported graph, run by ONNX Runtime on fresh inputs, matches the PyTorch module in float64; each
    exporter's outcome is recorded, with the reason where one fails."""
    import onnxruntime as ort

    spec = MODELS[name]
    size = spec.sizes[0]
    e = export_zoo(spec, size, 2, 0, tmp_path)
    assert set(e.exporters) == {"dynamo", "torchscript"}
    assert e.exporters[e.exporter]["status"] == "agrees"
    for r in e.exporters.values():
        assert r["status"] in ("agrees", "failed")
        assert r["status"] == "agrees" or r["reason"].startswith(("dynamo export failed", "torchscript export"))
    rng = np.random.default_rng(7)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in spec.inputs(size, 2).items()}
    outs = ort.InferenceSession(e.path, providers=["CPUExecutionProvider"]).run(None, feeds)
    refs = zoo_reference(spec, size, feeds, 0)
    c = compare(outs, refs)
    assert c.passed, (name, c.reason)
    assert outs[0].shape == _expected_shape(spec, size, 2)


def test_segnet_keeps_max_pool_indices_and_its_index_free_twin_is_equal():
    seg, twin = get_model("segnet").build(32), get_model("segnet_noidx").build(32)
    x = torch.randn(2, 3, 32, 32)
    x[0, :, :16] = 0.0  # constant regions: every pooling window there is a tie, resolved as max_pool2d does
    with torch.inference_mode():
        a, b = seg(x), twin(x)
    assert torch.equal(a, b)  # the same weights, and the index-free unpooling equals MaxUnpool


def test_segnet_torchscript_failure_is_recorded(tmp_path):
    e = export_zoo(get_model("segnet"), 16, 1, 0, tmp_path)
    assert e.exporter == "dynamo"
    assert e.exporters["torchscript"]["status"] == "failed"
    ops = e.exporters["dynamo"]["nodes"]
    assert "MaxPool" in ops and "ScatterND" in ops  # MaxUnpool is exported as a scatter


def test_convtranspose_attributes_the_zoo_exercises(tmp_path):
    """Between them the zoo's models use 1-D/2-D/3-D ConvTranspose, k2s2, k4s2p1, k16s8p4, k3s2p1 with
    output_padding 1, k4s1p0 from 1x1, groups and depthwise."""
    seen = set()
    for name in ("dcgan", "vae", "wave1d", "fcn8s", "dwdecoder", "vol3d"):
        spec = MODELS[name]
        m = onnx.load(export_zoo(spec, spec.sizes[0], 1, 0, tmp_path).path)
        for n in m.graph.node:
            if n.op_type == "ConvTranspose":
                a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
                w = next(i for i in m.graph.initializer if i.name == n.input[1])
                seen.add(
                    (
                        name,
                        len(w.dims) - 2,
                        tuple(a.get("strides", ())),
                        tuple(a.get("output_padding", ())),
                        a.get("group", 1) > 1,
                    )
                )
    assert any(s[1] == 1 for s in seen) and any(s[1] == 3 for s in seen)
    assert any(s[3] and max(s[3]) == 1 for s in seen)  # output_padding
    assert any(s[4] for s in seen)  # groups
    assert any(s[2] == (8, 8) for s in seen)  # FCN's x8


def test_seeded_initialisation_is_reproducible_and_seed_dependent():
    a = get_model("unet").build(64, seed=0).state_dict()
    b = get_model("unet").build(64, seed=0).state_dict()
    c = get_model("unet").build(64, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_cae_has_the_designed_layers():
    m = get_model("cae").build(32)
    convt = _convs(m, torch.nn.ConvTranspose2d)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convt] == [
        (32, 16, (2, 2), (2, 2)),
        (16, 3, (2, 2), (2, 2)),
    ]
    y = m(torch.rand(1, 3, 32, 32))
    assert y.shape == (1, 3, 32, 32) and (y >= 0).all() and (y <= 1).all()  # sigmoid output


def test_dcgan_is_the_published_generator_at_64():
    m = get_model("dcgan").build(64)
    convt = _convs(m, torch.nn.ConvTranspose2d)
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convt] == [
        (100, 512, 4, 1, 0),
        (512, 256, 4, 2, 1),
        (256, 128, 4, 2, 1),
        (128, 64, 4, 2, 1),
        (64, 3, 4, 2, 1),
    ]
    y = m(torch.randn(1, 100, 1, 1))
    assert y.abs().max() <= 1  # tanh
