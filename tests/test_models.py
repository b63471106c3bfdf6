import pytest
import torch

from harness.errors import ConvtxError, UnknownNameError
from models import MODELS, get_model, parse_model_ref


def test_registry_lookups():
    assert set(MODELS) >= {"cae", "unet"}
    with pytest.raises(UnknownNameError, match="known: cae, unet"):
        get_model("nope")
    spec, size = parse_model_ref("unet@128")
    assert spec.name == "unet" and size == 128
    assert parse_model_ref("cae")[1] == MODELS["cae"].sizes[0]
    with pytest.raises(ConvtxError, match="multiple of 16"):
        parse_model_ref("unet@40")


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
    assert y.shape[0] == batch and tuple(y.shape[-2:]) == (size, size)
    assert torch.isfinite(y).all()


def test_seeded_initialisation_is_reproducible_and_seed_dependent():
    a = get_model("unet").build(64, seed=0).state_dict()
    b = get_model("unet").build(64, seed=0).state_dict()
    c = get_model("unet").build(64, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_cae_has_the_designed_layers():
    m = get_model("cae").build(32)
    convt = [l for l in m.modules() if isinstance(l, torch.nn.ConvTranspose2d)]
    assert [(l.in_channels, l.out_channels, l.kernel_size, l.stride) for l in convt] == \
        [(32, 16, (2, 2), (2, 2)), (16, 3, (2, 2), (2, 2))]
    y = m(torch.rand(1, 3, 32, 32))
    assert y.shape == (1, 3, 32, 32) and (y >= 0).all() and (y <= 1).all()   # sigmoid output
