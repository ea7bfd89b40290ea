"""RTFormer: a dual-resolution real-time segmentation transformer.

Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer", Wang et al.,
NeurIPS 2022 (arXiv 2210.07124). Reference implementation: PaddleSeg `paddleseg/models/rtformer.py`.

This is an independent PyTorch port written from `../shared/docs/rtformer_spec.md`. Module names and their
registration order follow PaddleSeg exactly, so official `.pdparams` convert key for key (see `convert.py`).
Two places differ in formulation (not in numbers) so that the model exports to ONNX/TensorRT:
the cross-resolution attention is a batched matmul instead of a per-sample dynamic-kernel grouped conv, and
the cross-K/V adaptive max-pool is a static-slice re-implementation of PyTorch's bins for any input size.

Layout (Slim, 1024x2048 input):
    conv1 (stem, 1/4) -> layer1 -> layer2 (1/8) -> layer3 (1/16) -+-> compression3 --+
                                                  layer3_ (1/8) <-----------------+
    layer4, layer5: RTFormer blocks on (high 1/8, low 1/32)
    spp (DAPPM on low) -> up -> concat with high -> seghead -> x8 bilinear
    seghead_extra (training only) on layer3_ output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from rtformer_ros.metadata import MIN_INPUT_SIZE

__all__ = ['PRESETS', 'VARIANTS', 'RTFormer', 'RTFormerCfg', 'adaptive_max_pool2d', 'build_rtformer', 'resize']


# --------------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class RTFormerCfg:
    """Architecture options; field names follow PaddleSeg's constructor arguments.

    Args:
        base_channels: C; widths are C (stem, layer1), 2C (layer2, high branch), 4C (layer3), 8C (low branch).
        head_channels: aux head mid width; the main head uses twice this.
        num_classes: K, output channels.
        spp_channels: DAPPM branch width (128 in every released config).
        num_heads: groups of the grouped double normalisation in GFA.
        cross_size: the low branch is max-pooled to cross_size x cross_size tokens for cross attention.
        drop_rate: dropout inside the FFNs.
        drop_path_rate: stochastic depth on every residual branch of both RTFormer blocks (one shared rate).
        use_injection: high->low injection in (layer4, layer5).
        use_aux_head: build the training-only aux head on layer3_ (loss weight 0.4).
        in_channels: image channels.
        bn_momentum: PyTorch convention; 0.9 equals PaddleSeg's ``bn_mom=0.1`` (running stats follow the
            latest batch strongly). Only matters for training.
    """

    base_channels: int = 64
    head_channels: int = 128
    num_classes: int = 19
    spp_channels: int = 128
    num_heads: int = 8
    cross_size: int = 12
    drop_rate: float = 0.0
    drop_path_rate: float = 0.2
    use_injection: tuple[bool, bool] = (True, True)
    use_aux_head: bool = True
    in_channels: int = 3
    bn_momentum: float = 0.9

    def to_dict(self) -> dict:
        out = asdict(self)
        out['use_injection'] = list(self.use_injection)
        return out


VARIANTS: dict[str, dict] = {
    'slim': dict(base_channels=32, head_channels=64),
    'base': dict(base_channels=64, head_channels=128),
}
"""The two widths of the paper. Everything else is an option."""


@dataclass(frozen=True)
class Preset:
    """A released configuration: a variant, a dataset and the options its config file sets."""

    variant: str
    dataset: str
    options: dict = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    # PaddleSeg configs/rtformer/*.yml. Slim-Cityscapes injects in both blocks; all others only in layer4.
    'slim_cityscapes': Preset('slim', 'cityscapes', dict(num_classes=19, cross_size=12, drop_path_rate=0.2,
                                                         use_injection=(True, True))),
    'slim_ade20k': Preset('slim', 'ade20k', dict(num_classes=150, cross_size=8, drop_path_rate=0.1,
                                                 use_injection=(True, False))),
    'base_cityscapes': Preset('base', 'cityscapes', dict(num_classes=19, cross_size=12, drop_path_rate=0.2,
                                                         use_injection=(True, False))),
    'base_ade20k': Preset('base', 'ade20k', dict(num_classes=150, cross_size=12, drop_path_rate=0.1,
                                                 use_injection=(True, False))),
    # CamVid is trained from the Cityscapes architecture in the paper; same options, 11 classes.
    'slim_camvid': Preset('slim', 'camvid', dict(num_classes=11, cross_size=12, drop_path_rate=0.2,
                                                 use_injection=(True, True))),
    'base_camvid': Preset('base', 'camvid', dict(num_classes=11, cross_size=12, drop_path_rate=0.2,
                                                 use_injection=(True, False))),
}


# --------------------------------------------------------------------------------------------------- layers

def bn2d(channels: int, momentum: float, eps: float = 1e-5) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


def conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel, stride=stride, padding=kernel // 2, bias=bias)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, half-pixel (PaddleSeg's default ``align_mode=0``) to ``size`` (H, W): every resize of the model,
    its export and its validation."""
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`resize` to the spatial size of ``ref``."""
    return resize(x, ref.shape[2:])


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    # PyTorch/Paddle adaptive pooling: bin i covers [floor(i*size/out), ceil((i+1)*size/out)).
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_max_pool2d(x: torch.Tensor, output_size: int) -> torch.Tensor:
    """``F.adaptive_max_pool2d`` with PyTorch's exact bins, exportable to ONNX at any static input size.

    ONNX has no adaptive pooling and ``torch.onnx`` refuses it unless the input is a multiple of the output
    (32x64 -> 12x12 at 1024x2048 is not). Max over a rectangle is separable, so pool rows into bins, then
    columns, with static slices: 2 * output_size ReduceMax ops, identical numbers.
    """
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height % output_size == 0 and width % output_size == 0:
        return F.adaptive_max_pool2d(x, output_size)  # exports as a plain MaxPool
    rows = torch.cat([x[..., a:b, :].amax(dim=-2, keepdim=True) for a, b in _bins(height, output_size)], dim=-2)
    return torch.cat([rows[..., a:b].amax(dim=-1, keepdim=True) for a, b in _bins(width, output_size)], dim=-1)


class AdaptiveMaxPool2d(nn.Module):
    """Parameter-free module form of `adaptive_max_pool2d` (sits at index 1 of ``cross_kv``, as in PaddleSeg)."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_max_pool2d(x, self.output_size)


class DropPath(nn.Module):
    """Stochastic depth per sample; survivors are divided by the keep probability."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


# --------------------------------------------------------------------------------------------------- backbone

class BasicBlock(nn.Module):
    """DDRNet residual block: conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU unless it ends a stage."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, momentum: float, no_relu: bool = False) -> None:
        super().__init__()
        self.conv1 = conv(in_chs, out_chs, 3, stride)
        self.bn1 = bn2d(out_chs, momentum)
        self.relu = nn.ReLU()
        self.conv2 = conv(out_chs, out_chs, 3)
        self.bn2 = bn2d(out_chs, momentum)
        self.downsample = None
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(conv(in_chs, out_chs, 1, stride), bn2d(out_chs, momentum))
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out = out + shortcut
        return out if self.no_relu else self.relu(out)


def make_stage(in_chs: int, out_chs: int, depth: int, stride: int, momentum: float) -> nn.Sequential:
    """First block strides; the last block of a multi-block stage has no final ReLU (a 1-block stage keeps it)."""
    blocks = [BasicBlock(in_chs, out_chs, stride, momentum)]
    for i in range(1, depth):
        blocks.append(BasicBlock(out_chs, out_chs, 1, momentum, no_relu=i == depth - 1))
    return nn.Sequential(*blocks)


# --------------------------------------------------------------------------------------------------- attention

class MLP(nn.Module):
    """FFN of the RTFormer block: BN(eps 1e-6) -> conv3x3 -> GELU -> conv3x3, width kept (expansion 1)."""

    def __init__(self, channels: int, drop_rate: float, momentum: float) -> None:
        super().__init__()
        self.norm = bn2d(channels, momentum, eps=1e-6)
        self.conv1 = conv(channels, channels, 3, bias=True)
        self.act = nn.GELU()  # exact (erf) form, as in PaddleSeg
        self.conv2 = conv(channels, channels, 3, bias=True)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.conv1(self.norm(x))))
        return self.drop(self.conv2(x))


class ExternalAttention(nn.Module):
    """GPU-Friendly Attention (low branch) or cross-resolution attention (high branch, ``cross=True``).

    GFA: learnable memories ``k`` (M x Cin) and ``v`` (Cout x M) used as 1x1 convs, with grouped double
    normalisation in between: softmax over tokens, then each value divided by its group's sum over slots.
    Cross attention: no parameters but ``norm``; keys/values come per sample from the low branch.
    NOTE: ``k``/``v`` stay 4-D conv kernels and are created before ``norm`` so keys match PaddleSeg.
    """

    def __init__(self, in_chs: int, out_chs: int, inter_chs: int, num_heads: int, momentum: float,
                 cross: bool = False) -> None:
        super().__init__()
        self.inter_chs = inter_chs
        self.num_heads = num_heads
        self.stride = 2 if in_chs != out_chs else 1  # layer4's GFA also takes the low branch from 1/16 to 1/32
        self.cross = cross
        if not cross:
            self.k = nn.Parameter(torch.empty(inter_chs, in_chs, 1, 1))
            self.v = nn.Parameter(torch.empty(out_chs, inter_chs, 1, 1))
        self.norm = bn2d(in_chs, momentum)

    def forward(self, x: torch.Tensor, cross_kv: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if self.cross:
            return self._cross_attention(x, cross_kv)
        attn = F.conv2d(x, self.k, stride=self.stride)
        n, m, h, w = attn.shape
        attn = attn.reshape(n, self.num_heads, m // self.num_heads, h * w).softmax(dim=3)
        attn = attn / (attn.sum(dim=2, keepdim=True) + 1e-6)
        return F.conv2d(attn.reshape(n, m, h, w), self.v)

    @staticmethod
    def _cross_attention(q: torch.Tensor, cross_kv: torch.Tensor) -> torch.Tensor:
        # Batched matmul form of PaddleSeg's grouped-conv trick (identical numbers, no batch baked into the graph).
        n, c, h, w = q.shape
        k, v = cross_kv.flatten(2).split(c, dim=1)  # (N, C, T) each, token t = i * cs + j
        tokens = k.shape[-1]
        attn = (k.transpose(1, 2) @ q.reshape(n, c, h * w)) * tokens ** -0.5  # (N, T, HW)
        return (v @ attn.softmax(dim=1)).reshape(n, c, h, w)


class EABlock(nn.Module):
    """RTFormer block on (high, low): low GFA + FFN, low->high compression, cross attention + FFN, injection.

    Submodules are registered in PaddleSeg's order (it defines the state-dict key order).
    """

    def __init__(self, high_chs: int, low_in_chs: int, low_chs: int, cfg: RTFormerCfg, use_injection: bool) -> None:
        super().__init__()
        mom, cs = cfg.bn_momentum, cfg.cross_size
        self.attn_shortcut_l = None
        if low_in_chs != low_chs:
            self.attn_shortcut_l = nn.Sequential(bn2d(low_in_chs, mom), conv(low_in_chs, low_chs, 1, stride=2))
        self.attn_l = ExternalAttention(low_in_chs, low_chs, low_chs, cfg.num_heads, mom)
        self.mlp_l = MLP(low_chs, cfg.drop_rate, mom)
        self.drop_path = DropPath(cfg.drop_path_rate)
        self.compression = nn.Sequential(bn2d(low_chs, mom), nn.ReLU(), conv(low_chs, high_chs, 1))
        self.attn_h = ExternalAttention(high_chs, high_chs, cs * cs, cfg.num_heads, mom, cross=True)
        self.mlp_h = MLP(high_chs, cfg.drop_rate, mom)
        self.cross_kv = nn.Sequential(bn2d(low_chs, mom), AdaptiveMaxPool2d(cs), conv(low_chs, 2 * high_chs, 1))
        self.down = None
        if use_injection:
            self.down = nn.Sequential(
                bn2d(high_chs, mom), nn.ReLU(), conv(high_chs, low_chs // 2, 3, stride=2),
                bn2d(low_chs // 2, mom), nn.ReLU(), conv(low_chs // 2, low_chs, 3, stride=2),
            )

    def forward(self, x_h: torch.Tensor, x_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shortcut = x_l if self.attn_shortcut_l is None else self.attn_shortcut_l(x_l)
        x_l = shortcut + self.drop_path(self.attn_l(x_l))
        x_l = x_l + self.drop_path(self.mlp_l(x_l))
        # Out of place: x_h is a ReLU output autograd still needs (PaddleSeg adds in place).
        x_h = x_h + resize_to(self.compression(x_l), x_h)
        x_h = x_h + self.drop_path(self.attn_h(x_h, self.cross_kv(x_l)))
        x_h = x_h + self.drop_path(self.mlp_h(x_h))
        if self.down is not None:
            x_l = x_l + self.down(x_h)
        return x_h, x_l


# --------------------------------------------------------------------------------------------------- DAPPM, heads

def _bn_relu_conv(in_chs: int, out_chs: int, kernel: int, momentum: float, pool: nn.Module | None = None):
    layers = [bn2d(in_chs, momentum), nn.ReLU(), conv(in_chs, out_chs, kernel)]
    return nn.Sequential(*([pool] if pool is not None else []), *layers)


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling (DDRNet): pooled branches fused hierarchically, then compressed.

    AvgPools count padded zeros (PaddleSeg ``exclusive=False`` = PyTorch ``count_include_pad=True``).
    """

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, momentum: float) -> None:
        super().__init__()
        self.scale1 = _bn_relu_conv(in_chs, mid_chs, 1, momentum, nn.AvgPool2d(5, 2, 2))
        self.scale2 = _bn_relu_conv(in_chs, mid_chs, 1, momentum, nn.AvgPool2d(9, 4, 4))
        self.scale3 = _bn_relu_conv(in_chs, mid_chs, 1, momentum, nn.AvgPool2d(17, 8, 8))
        self.scale4 = _bn_relu_conv(in_chs, mid_chs, 1, momentum, nn.AdaptiveAvgPool2d(1))
        self.scale0 = _bn_relu_conv(in_chs, mid_chs, 1, momentum)
        self.process1 = _bn_relu_conv(mid_chs, mid_chs, 3, momentum)
        self.process2 = _bn_relu_conv(mid_chs, mid_chs, 3, momentum)
        self.process3 = _bn_relu_conv(mid_chs, mid_chs, 3, momentum)
        self.process4 = _bn_relu_conv(mid_chs, mid_chs, 3, momentum)
        self.compression = _bn_relu_conv(mid_chs * 5, out_chs, 1, momentum)
        self.shortcut = _bn_relu_conv(in_chs, out_chs, 1, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.scale0(x)]
        scales = (self.scale1, self.scale2, self.scale3, self.scale4)
        processes = (self.process1, self.process2, self.process3, self.process4)
        for scale, process in zip(scales, processes, strict=True):
            ys.append(process(resize_to(scale(x), x) + ys[-1]))
        return self.compression(torch.cat(ys, dim=1)) + self.shortcut(x)


class SegHead(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv1x1(+bias) classifier at 1/8."""

    def __init__(self, in_chs: int, mid_chs: int, num_classes: int, momentum: float) -> None:
        super().__init__()
        self.bn1 = bn2d(in_chs, momentum)
        self.conv1 = conv(in_chs, mid_chs, 3)
        self.bn2 = bn2d(mid_chs, momentum)
        self.relu = nn.ReLU()
        self.conv2 = conv(mid_chs, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(x)))


# --------------------------------------------------------------------------------------------------- model

class RTFormer(nn.Module):
    """RTFormer. Eval: ``forward(x)`` -> N x K x H x W logits at the input size. Train: (main, aux) logits.

    Attribute names are PaddleSeg's (weight compatibility), in its registration order.
    """

    def __init__(self, cfg: RTFormerCfg) -> None:
        super().__init__()
        self.cfg = cfg
        c, mom = cfg.base_channels, cfg.bn_momentum
        self.conv1 = nn.Sequential(
            conv(cfg.in_channels, c, 3, stride=2, bias=True), bn2d(c, mom), nn.ReLU(),
            conv(c, c, 3, stride=2, bias=True), bn2d(c, mom), nn.ReLU(),
        )
        self.relu = nn.ReLU()
        self.layer1 = make_stage(c, c, 2, 1, mom)
        self.layer2 = make_stage(c, 2 * c, 2, 2, mom)
        self.layer3 = make_stage(2 * c, 4 * c, 2, 2, mom)
        self.layer3_ = make_stage(2 * c, 2 * c, 1, 1, mom)
        self.compression3 = _bn_relu_conv(4 * c, 2 * c, 1, mom)
        self.layer4 = EABlock(2 * c, 4 * c, 8 * c, cfg, cfg.use_injection[0])
        self.layer5 = EABlock(2 * c, 8 * c, 8 * c, cfg, cfg.use_injection[1])
        self.spp = DAPPM(8 * c, cfg.spp_channels, 2 * c, mom)
        self.seghead = SegHead(4 * c, 2 * cfg.head_channels, cfg.num_classes, mom)
        self.seghead_extra = SegHead(2 * c, cfg.head_channels, cfg.num_classes, mom) if cfg.use_aux_head else None
        self.init_weights()

    def init_weights(self) -> None:
        """PaddleSeg's from-scratch init: Kaiming-normal convs, BN 1/0, memories N(0, 1e-3), cross K/V TN(0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ExternalAttention) and not m.cross:
                nn.init.normal_(m.k, std=1e-3)
                nn.init.normal_(m.v, std=1e-3)
        for block in (self.layer4, self.layer5):
            nn.init.trunc_normal_(block.cross_kv[2].weight, std=0.02, a=-0.04, b=0.04)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (fused 1/8 features for the main head, layer3_ output for the aux head)."""
        x1 = self.layer1(self.conv1(x))  # 1/4
        x2 = self.layer2(self.relu(x1))  # 1/8
        x3 = self.layer3(self.relu(x2))  # 1/16
        x3_ = self.layer3_(self.relu(x2 + resize_to(self.compression3(x3), x2)))  # 1/8
        x4_, x4 = self.layer4(self.relu(x3_), self.relu(x3))  # 1/8, 1/32
        x5_, x5 = self.layer5(self.relu(x4_), self.relu(x4))
        x6 = resize_to(self.spp(x5), x5_)
        return torch.cat([x5_, x6], dim=1), x3_

    def forward(self, x: torch.Tensor, out_size: tuple[int, int] | None = None,
                ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits at ``out_size`` (default: the input's H, W); in training also the aux head's."""
        self._check_input(x)
        feats, x3_ = self.forward_features(x)
        logits = [self.seghead(feats)]
        if self.training and self.seghead_extra is not None:
            logits.append(self.seghead_extra(x3_))
        size = tuple(out_size or x.shape[2:])
        # One bilinear step from 1/8 to the output, also when the network ran at another size than the frame.
        logits = [resize(logit, size) for logit in logits]
        return tuple(logits) if self.training else logits[0]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            msg = f'RTFormer expects N x {self.cfg.in_channels} x H x W input, got shape {tuple(x.shape)}'
            raise ValueError(msg)
        if min(int(x.shape[2]), int(x.shape[3])) < MIN_INPUT_SIZE:
            msg = f'RTFormer needs H, W >= {MIN_INPUT_SIZE} (1/32 feature map), got {tuple(x.shape[2:])}'
            raise ValueError(msg)


def build_rtformer(variant: str = 'slim', num_classes: int | None = None, **options) -> RTFormer:
    """Build Slim or Base, or a named preset (``slim_cityscapes``, ``base_ade20k``, ``slim_camvid``, ...).

    Args:
        variant: ``slim``, ``base`` or a key of ``PRESETS``.
        num_classes: overrides the preset's / default class count.
        **options: any other `RTFormerCfg` field (``cross_size``, ``use_injection``, ``drop_path_rate``, ...).

    Raises:
        ValueError: unknown variant or option.
    """
    if variant in PRESETS:
        preset = PRESETS[variant]
        variant, options = preset.variant, {**preset.options, **options}
    if variant not in VARIANTS:
        msg = f'unknown RTFormer variant {variant!r} (variants: {", ".join(VARIANTS)}; presets: {", ".join(PRESETS)})'
        raise ValueError(msg)
    if num_classes is not None:
        options['num_classes'] = num_classes
    fields = set(RTFormerCfg.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        msg = f'unknown RTFormer option(s): {", ".join(unknown)}'
        raise ValueError(msg)
    if 'use_injection' in options:
        options['use_injection'] = tuple(bool(v) for v in options['use_injection'])
    cfg = replace(RTFormerCfg(**VARIANTS[variant]), **options)
    if len(cfg.use_injection) != 2:
        raise ValueError('use_injection needs two flags (layer4, layer5)')
    return RTFormer(cfg)


def variant_of(cfg: RTFormerCfg) -> str:
    """``slim``/``base`` for a config (by width), or ``custom``."""
    for name, widths in VARIANTS.items():
        if all(getattr(cfg, k) == v for k, v in widths.items()):
            return name
    return 'custom'


def count_params(model: nn.Module, exclude: Sequence[str] = ()) -> int:
    """Trainable values, skipping parameters whose name starts with any prefix in ``exclude``."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(tuple(exclude)))


def count_macs(model: RTFormer, size: tuple[int, int]) -> float:
    """Multiply-accumulates of one eval forward at ``size`` (convs and attention matmuls), counted by torch.

    Runs a copy of the architecture on the meta device: shapes only, no arithmetic, so 1024x2048 is instant.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device('meta'):
        shadow = RTFormer(model.cfg).eval()
        image = torch.zeros(1, model.cfg.in_channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        shadow(image)
    return counter.get_total_flops() / 2
