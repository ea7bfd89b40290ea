"""RTFormer port: key layout, parity with PaddleSeg, any input size, exportable formulations, counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

try:  # dev-only (requirements-dev.txt): absent on robots, skipped there
    import torch
    import torch.nn.functional as F
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)

from rtformer_ros.model import build_rtformer
from rtformer_ros.model.convert import convert_state_dict, load_pdparams, paddle_to_torch_key
from rtformer_ros.model.rtformer import ExternalAttention, adaptive_max_pool2d, count_macs, count_params


def _paddle_keys(path):
    ref = json.loads(path.read_text())
    return [(paddle_to_torch_key(k), shape) for k, shape in ref.items()]


@pytest.mark.parametrize(('fixture', 'variant', 'options'), [
    ('rtformer_slim_c19_keys.json', 'slim', dict(use_injection=(True, True))),
    ('rtformer_base_c19_keys.json', 'base', dict(use_injection=(True, False))),
])
def test_state_dict_keys_order_and_shapes_match_paddleseg(paddle_fixtures, fixture, variant, options):
    model = build_rtformer(variant, num_classes=19, **options)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')]
    assert ours == _paddle_keys(paddle_fixtures / fixture)


def test_converted_official_weights_reproduce_paddleseg_logits(paddle_fixtures):
    model = build_rtformer('slim_cityscapes').eval()
    model.load_state_dict(convert_state_dict(load_pdparams(paddle_fixtures / 'rtformer_slim_c19.pdparams'), model))
    x = torch.from_numpy(np.load(paddle_fixtures / 'rtformer_slim_c19_input.npy'))
    reference = np.load(paddle_fixtures / 'rtformer_slim_c19_logits.npy')
    with torch.no_grad():
        logits = model(x).numpy()
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= 1e-4 * np.abs(reference).max()


@pytest.mark.parametrize('size', [(64, 64), (360, 480), (97, 131), (512, 200)])
def test_any_input_size_gives_logits_at_input_size(size):
    model = build_rtformer('slim', num_classes=11).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 11, *size)
    assert torch.isfinite(out).all()


def test_train_mode_returns_main_and_aux_logits():
    model = build_rtformer('slim', num_classes=5).train()
    main, aux = model(torch.randn(2, 3, 96, 128))
    assert main.shape == aux.shape == (2, 5, 96, 128)
    (main.mean() + aux.mean()).backward()  # out-of-place adds: autograd works through every branch
    assert model.layer4.attn_l.k.grad is not None and model.layer5.cross_kv[2].weight.grad is not None


@pytest.mark.parametrize(('shape', 'match'), [
    ((3, 64, 64), 'N x 3 x H x W'),
    ((1, 4, 64, 64), 'N x 3 x H x W'),
    ((1, 3, 32, 64), 'H, W >= 64'),
])
def test_bad_input_shape_raises_value_error_saying_what_is_expected(shape, match):
    model = build_rtformer('slim', num_classes=3).eval()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


@pytest.mark.parametrize('size', [(2, 2), (7, 13), (12, 24), (23, 30), (32, 64), (45, 61)])
@pytest.mark.parametrize('out', [8, 12])
def test_adaptive_max_pool_matches_pytorch_bins_exactly(size, out):
    x = torch.randn(2, 5, *size)
    assert torch.equal(adaptive_max_pool2d(x, out), F.adaptive_max_pool2d(x, out))


def _grouped_conv_cross_attention(attn: ExternalAttention, x_h, cross_kv):
    """PaddleSeg's formulation: the batch folded into channels, per-sample kernels as grouped convs."""
    n, c, h, w = x_h.shape
    cross_k, cross_v = cross_kv.split(c, dim=1)
    tokens = cross_k.shape[2] * cross_k.shape[3]
    cross_k = cross_k.permute(0, 2, 3, 1).reshape(n * tokens, c, 1, 1)
    cross_v = cross_v.reshape(n * c, tokens, 1, 1)
    q = attn.norm(x_h).reshape(1, n * c, h, w)
    scores = F.conv2d(q, cross_k, groups=n).reshape(n, tokens, h, w) * tokens ** -0.5
    scores = scores.softmax(dim=1).reshape(1, n * tokens, h, w)
    return F.conv2d(scores, cross_v, groups=n).reshape(n, c, h, w)


def test_batched_matmul_cross_attention_equals_official_grouped_conv():
    torch.manual_seed(0)
    attn = ExternalAttention(64, 64, 144, 8, 0.1, cross=True).eval()
    x_h, cross_kv = torch.randn(3, 64, 23, 31), torch.randn(3, 128, 12, 12)
    with torch.no_grad():
        ours, official = attn(x_h, cross_kv), _grouped_conv_cross_attention(attn, x_h, cross_kv)
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-5)


def test_parameter_counts_match_the_spec_and_the_paper():
    slim_city = build_rtformer('slim_cityscapes')
    assert count_params(slim_city) == 5_403_398
    assert count_params(slim_city, ['seghead_extra']) == 5_365_043
    paper = ['seghead_extra', 'layer4.attn_l.k', 'layer4.attn_l.v', 'layer5.attn_l.k', 'layer5.attn_l.v']
    # The paper's 4.8 M / 16.8 M: no aux head, GFA memories uncounted, Slim injecting in layer4 only.
    assert count_params(build_rtformer('slim', 19, use_injection=(True, False)), paper) == 4_766_643
    assert count_params(build_rtformer('base_cityscapes'), paper) == 16_848_467


def test_gmacs_at_cityscapes_resolution_match_the_spec():
    assert count_macs(build_rtformer('slim_cityscapes'), (1024, 2048)) / 1e9 == pytest.approx(37.8, abs=0.05)
    assert count_macs(build_rtformer('base_cityscapes'), (1024, 2048)) / 1e9 == pytest.approx(138.9, abs=0.05)


def test_presets_and_options_build_the_released_configs():
    ade = build_rtformer('slim_ade20k')
    assert (ade.cfg.cross_size, ade.cfg.num_classes, ade.cfg.use_injection) == (8, 150, (True, False))
    assert ade.layer5.down is None and ade.layer4.down is not None
    assert build_rtformer('base', 7, cross_size=6, drop_path_rate=0.0).cfg.cross_size == 6
    with pytest.raises(ValueError, match='unknown RTFormer variant'):
        build_rtformer('large')
    with pytest.raises(ValueError, match='unknown RTFormer option'):
        build_rtformer('slim', 3, heads=4)
