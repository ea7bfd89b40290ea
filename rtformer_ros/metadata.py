"""What an exported model says about itself: the ``metadata_props`` contract between export and engine.

Export writes these string pairs into the ONNX file; the engine (and through it the node and the evaluator)
reads them back, so a deployed ``.onnx`` needs nothing beside it. Plain Python: imports neither torch nor
ONNX Runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rtformer_ros.classes import IGNORE_INDEX
from rtformer_ros.errors import RtformerError
from rtformer_ros.util import parse_hw

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'LAYOUT', 'MIN_INPUT_SIZE', 'MetadataError', 'ModelMetadata']

# Normalisation of the PaddleSeg recipe, in 0..1 units (applied inside the exported graph).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MIN_INPUT_SIZE = 64
"""Smallest H and W the network (and so a graph's input) takes: its 1/32 feature map must not be empty."""

LAYOUT = 'NHWC uint8 RGB'
"""Graph input layout: (1, H, W, 3) uint8 RGB frames; outputs `labels` (1, H, W) uint8 [, `confidence`]."""

_PREFIX = 'rtformer.'


class MetadataError(RtformerError, ValueError):
    """The model's metadata is missing or malformed."""


@dataclass(frozen=True)
class ModelMetadata:
    """Self-description of an exported RTFormer graph."""

    variant: str
    dataset: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int]  # (H, W) the graph was exported at
    net_size: tuple[int, int] | None = None  # (H, W) the network runs at inside the graph; None: input_size
    layout: str = LAYOUT
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    ignore_index: int = IGNORE_INDEX
    precision: str = 'fp32'  # 'fp32', 'fp16' or 'int8' (QDQ, from `rtformer quantize`)
    confidence: bool = False
    package_version: str = ''
    calibration: str = ''  # int8: the calibration source, frame count and method
    flip: bool = False  # test-time flip: logits of the frame and of its mirror averaged inside the graph

    def __post_init__(self) -> None:
        if self.net_size is None:
            object.__setattr__(self, 'net_size', tuple(self.input_size))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_props(self) -> dict[str, str]:
        """Flat string pairs for ONNX ``metadata_props`` (lists as JSON)."""
        values = {
            'variant': self.variant,
            'dataset': self.dataset,
            'num_classes': str(self.num_classes),
            'class_names': json.dumps(list(self.class_names)),
            'palette': json.dumps([list(c) for c in self.palette]),
            'input_size': f'{self.input_size[0]}x{self.input_size[1]}',
            'net_size': f'{self.net_size[0]}x{self.net_size[1]}',
            'layout': self.layout,
            'mean': json.dumps(list(self.mean)),
            'std': json.dumps(list(self.std)),
            'ignore_index': str(self.ignore_index),
            'precision': self.precision,
            'confidence': 'true' if self.confidence else 'false',
            'package_version': self.package_version,
        }
        if self.calibration:  # only quantized files have one; fp32/fp16 exports keep their bytes
            values['calibration'] = self.calibration
        if self.flip:  # likewise: exports without --flip keep their bytes
            values['flip'] = 'true'
        return {_PREFIX + k: v for k, v in values.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = 'model') -> ModelMetadata:
        """Parse what ``to_props`` wrote.

        Raises:
            MetadataError: a key is missing or a value does not parse; the message names ``source``.
        """
        try:
            get = {k[len(_PREFIX):]: v for k, v in props.items() if k.startswith(_PREFIX)}
            height, width = parse_hw(get['input_size'])
            meta = cls(
                variant=get['variant'],
                dataset=get['dataset'],
                class_names=tuple(json.loads(get['class_names'])),
                palette=tuple(tuple(int(v) for v in c) for c in json.loads(get['palette'])),
                input_size=(height, width),
                net_size=parse_hw(get['net_size']) if 'net_size' in get else None,  # older files: no resize
                layout=get['layout'],
                mean=tuple(float(v) for v in json.loads(get['mean'])),
                std=tuple(float(v) for v in json.loads(get['std'])),
                ignore_index=int(get.get('ignore_index', IGNORE_INDEX)),
                precision=get.get('precision', 'fp32'),
                confidence=get.get('confidence', 'false') == 'true',
                package_version=get.get('package_version', ''),
                calibration=get.get('calibration', ''),
                flip=get.get('flip', 'false') == 'true',
            )
        except KeyError as err:
            msg = f'{source}: metadata key {_PREFIX}{err.args[0]} missing (not exported by rtformer export?)'
            raise MetadataError(msg) from None
        except (ValueError, TypeError) as err:
            msg = f'{source}: malformed rtformer metadata ({err})'
            raise MetadataError(msg) from None
        if int(get['num_classes']) != meta.num_classes or len(meta.palette) != meta.num_classes:
            msg = f'{source}: metadata num_classes, class_names and palette disagree'
            raise MetadataError(msg)
        return meta
