"""A tiny ONNX graph that honours the exported-model contract, for fast engine/node tests.

image uint8 (1,H,W,3) RGB -> labels uint8 (1,H,W) [, confidence float32 (1,H,W)], with rtformer metadata.
The per-pixel classifier is a fixed 1x1 conv: class 0 wins on red, 1 on green, 2 on blue, 3 on dark pixels,
so tests can predict labels from colours. The real RTFormer export is tested separately.

``fail_unless_flat`` makes a model that loads and warms up (warm-up frames are one flat colour) but fails inside
ONNX Runtime on every frame that is not flat: a Gather indexes a one-element table with the frame's value
spread. That is a real run-time failure of the real engine, as a lost GPU gives, for the node's failure policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rtformer_ros import __version__
from rtformer_ros.classes import get_classes
from rtformer_ros.metadata import ModelMetadata


def make_tiny_model(path: Path, size: tuple[int, int] = (64, 80), dataset: str = 'camvid',
                    confidence: bool = False, fail_unless_flat: bool = False) -> Path:
    height, width = size
    classes = get_classes(dataset)
    k = classes.num_classes
    weight = np.zeros((k, 3, 1, 1), np.float32)
    bias = np.full((k,), -4.0, np.float32)
    weight[0, :, 0, 0] = (8, -4, -4)
    weight[1, :, 0, 0] = (-4, 8, -4)
    weight[2, :, 0, 0] = (-4, -4, 8)
    weight[3, :, 0, 0] = (-4, -4, -4)
    bias[:4] = (0, 0, 0, 2)
    nodes = [
        helper.make_node('Cast', ['image'], ['f'], to=TensorProto.FLOAT),
        helper.make_node('Transpose', ['f'], ['nchw'], perm=[0, 3, 1, 2]),
        helper.make_node('Div', ['nchw', 'scale'], ['x0']),
        *(_fail_unless_flat('f', 'x0', 'x') if fail_unless_flat else
          [helper.make_node('Identity', ['x0'], ['x'])]),
        helper.make_node('Conv', ['x', 'w', 'b'], ['logits']),
        helper.make_node('ArgMax', ['logits'], ['idx'], axis=1, keepdims=0),
        helper.make_node('Cast', ['idx'], ['labels'], to=TensorProto.UINT8),
    ]
    outputs = [helper.make_tensor_value_info('labels', TensorProto.UINT8, [1, height, width])]
    if confidence:
        nodes += [
            helper.make_node('Softmax', ['logits'], ['prob'], axis=1),
            helper.make_node('ReduceMax', ['prob'], ['confidence'], keepdims=0, axes=[1]),
        ]
        outputs.append(helper.make_tensor_value_info('confidence', TensorProto.FLOAT, [1, height, width]))
    initializer = [numpy_helper.from_array(np.float32(255.0), 'scale'), numpy_helper.from_array(weight, 'w'),
                   numpy_helper.from_array(bias, 'b')]
    if fail_unless_flat:
        initializer.append(numpy_helper.from_array(np.zeros(1, np.float32), 'table'))
    graph = helper.make_graph(
        nodes, 'tiny_rtformer_contract',
        [helper.make_tensor_value_info('image', TensorProto.UINT8, [1, height, width, 3])],
        outputs,
        initializer=initializer,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    meta = ModelMetadata(variant='tiny', dataset=classes.name, class_names=classes.names, palette=classes.palette,
                         input_size=size, confidence=confidence, package_version=__version__)
    helper.set_model_props(model, meta.to_props())
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path


def _fail_unless_flat(image: str, x: str, out: str) -> list[onnx.NodeProto]:
    """``out = x + table[spread]``, spread the largest per-channel max - min over the frame: table has one zero,
    so any frame that is not a single colour indexes out of bounds."""
    return [
        helper.make_node('ReduceMax', [image], ['hi'], axes=[1, 2], keepdims=0),
        helper.make_node('ReduceMin', [image], ['lo'], axes=[1, 2], keepdims=0),
        helper.make_node('Sub', ['hi', 'lo'], ['spreads']),
        helper.make_node('ReduceMax', ['spreads'], ['spread'], keepdims=0),
        helper.make_node('Cast', ['spread'], ['index'], to=TensorProto.INT64),
        helper.make_node('Gather', ['table', 'index'], ['zero']),
        helper.make_node('Add', [x, 'zero'], [out]),
    ]
