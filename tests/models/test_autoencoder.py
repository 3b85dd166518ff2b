"""GaussianAutoencoder: exact flow inverse, block structure of the latent, resampling, training."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("zuko")

from latentshape import WristbandLoss
from latentshape.models import GaussianAutoencoder, reconstruction_error, train_autoencoder

BOTTOM = list(range(32, 64))


def _model(latent_dim: int = 6, context_dim: int = 3, **kwargs) -> GaussianAutoencoder:
    torch.manual_seed(0)
    return GaussianAutoencoder(64, latent_dim, context_dim=context_dim, context_features=BOTTOM, hidden=32, **kwargs)


def _scramble_flows(model: GaussianAutoencoder, scale: float = 0.02) -> None:
    """Move the flows away from their near-identity start (|z - h| up to ~4) so the inverse test bites."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for flow in (model.context_flow, model.residual_flow):
            for parameter in flow.parameters():
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("context_dim", [0, 1, 3])
def test_flow_inverse_is_exact(context_dim: int) -> None:
    model = _model(latent_dim=6, context_dim=context_dim)
    if context_dim > 0:
        _scramble_flows(model)
    h = torch.randn(512, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = model.flow_forward(h)
        assert (z - h).abs().max() > 0.1  # the flow does something
        assert torch.allclose(model.flow_inverse(z), h, rtol=0, atol=1e-5)
        assert torch.allclose(model.flow_forward(model.flow_inverse(h)), h, rtol=0, atol=1e-5)


def test_flow_inverse_float64() -> None:
    model = _model().double()
    _scramble_flows(model)
    h = torch.randn(256, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.flow_inverse(model.flow_forward(h)), h, rtol=0, atol=1e-10)


def test_decode_inverts_the_flow_of_encode() -> None:
    model = _model()
    x = torch.rand(8, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model.flow_inverse(model.encode(x)), model.pre_flow(x), atol=1e-5)
        expected = torch.sigmoid(model.decoder(model.pre_flow(x)))
        assert torch.allclose(model(x)[1], expected, atol=1e-5)


def test_context_block_sees_only_the_context_features() -> None:
    model = _model()
    _scramble_flows(model)
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(4))
    changed = x.clone()
    changed[:, :32] = torch.rand(16, 32, generator=torch.Generator().manual_seed(5))  # new top halves
    with torch.no_grad():
        z, z_changed = model.encode(x), model.encode(changed)
        assert torch.equal(z[:, :3], z_changed[:, :3])
        assert not torch.allclose(z[:, 3:], z_changed[:, 3:])
        assert torch.allclose(model.encode_context(x[:, BOTTOM]), z[:, :3], atol=1e-6)


@pytest.mark.parametrize("block, held, drawn", [("residual", slice(0, 2), slice(2, 5)), ("context", slice(2, 5), slice(0, 2))])
def test_resample_holds_the_other_block(block: str, held: slice, drawn: slice) -> None:
    model = _model(latent_dim=5, context_dim=2)
    z = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    new = model.resample(z, block, generator=torch.Generator().manual_seed(1))
    assert torch.equal(new[:, held], z[:, held])
    assert (new[:, drawn] != z[:, drawn]).all()
    assert abs(float(new[:, drawn].mean())) < 0.2 and abs(float(new[:, drawn].std()) - 1) < 0.1
    again = model.resample(z, block, generator=torch.Generator().manual_seed(1))
    assert torch.equal(new, again)
    assert torch.equal(z, torch.randn(300, 5, generator=torch.Generator().manual_seed(0)))  # input untouched


def test_sample_and_complete_shapes_and_determinism() -> None:
    model = _model()
    with torch.no_grad():
        first = model.sample(7, generator=torch.Generator().manual_seed(9))
        second = model.sample(7, generator=torch.Generator().manual_seed(9))
        assert first.shape == (7, 64) and torch.equal(first, second)
        assert ((first > 0) & (first < 1)).all()
        completions = model.complete(torch.rand(4, 32), samples=5, generator=torch.Generator().manual_seed(1))
        assert completions.shape == (4, 5, 64)
        assert not torch.allclose(completions[:, 0], completions[:, 1])


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="context_dim"):
        GaussianAutoencoder(64, 4, context_dim=4)
    with pytest.raises(ValueError, match="context_features"):
        GaussianAutoencoder(64, 4, context_dim=2, context_features=[70])
    model = _model()
    with pytest.raises(ValueError, match=r"\(\.\.\., 64\)"):
        model.encode(torch.rand(3, 10))
    with pytest.raises(TypeError, match="floating"):
        model.decode(torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="block"):
        model.resample(torch.randn(3, 6), "both")
    with pytest.raises(ValueError, match="no context block"):
        _model(context_dim=0).resample(torch.randn(3, 6), "context")


def test_missing_zuko_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zuko", None)
    monkeypatch.setitem(sys.modules, "zuko.flows", None)
    with pytest.raises(ImportError, match=r"latentshape\[demo\]"):
        GaussianAutoencoder(4, 2)


def test_tiny_training_lowers_reconstruction_error_and_wristband_total() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = torch.tensor(sklearn_datasets.load_digits().data[:300] / 16.0, dtype=torch.float32)
    torch.manual_seed(0)
    model = GaussianAutoencoder(64, 4, context_dim=2, context_features=BOTTOM, hidden=64)
    loss_fn = WristbandLoss(null_samples=128)
    with torch.no_grad():
        error_before, total_before = reconstruction_error(model, data), float(loss_fn(model.encode(data)))
    history = train_autoencoder(model, data, epochs=40, batch_size=100, gaussian_weight=0.05, latent_noise=0.2,
                                regularizer=loss_fn, progress=False)
    with torch.no_grad():
        error_after, total_after = reconstruction_error(model, data), float(loss_fn(model.encode(data)))
    assert history.steps == 120 and len(history.reconstruction) == 40
    assert error_after < 0.5 * error_before
    assert total_after < 0.01 * total_before  # 18702 -> 88 (N = 300; batches of 100 reach ~28)
    assert history.gaussianity[-1] < history.gaussianity[0]


def test_training_is_deterministic_given_the_seed() -> None:
    data = torch.rand(64, 64, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        model = _model()
        train_autoencoder(model, data, epochs=2, batch_size=32, latent_noise=0.1, progress=False,
                          regularizer=WristbandLoss(null_samples=32))
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_training_options_take_0d_tensors_and_refuse_bools() -> None:
    # a 0-d tensor learning rate (e.g. from a schedule) was accepted before the option checks
    model = _model()
    data = torch.rand(16, 64, generator=torch.Generator().manual_seed(1))
    history = train_autoencoder(model, data, epochs=1, batch_size=8, learning_rate=torch.tensor(1e-3),
                                gaussian_weight=torch.tensor(0.1), progress=False,
                                regularizer=WristbandLoss(null_samples=32))
    assert history is not None
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        train_autoencoder(model, data, epochs=1, batch_size=8, learning_rate=True, progress=False)
