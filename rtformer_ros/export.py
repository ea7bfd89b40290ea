"""Checkpoint -> ONNX graph that takes a camera frame and returns labels.

The exported graph does the whole per-frame job on the device: uint8 NHWC RGB in, ImageNet normalisation,
RTFormer, argmax at input size, uint8 labels out (and optionally the max softmax probability). Shapes are
static per export (TensorRT builds one engine); the file carries its own metadata (`rtformer_ros.metadata`), so
the node needs nothing but it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from rtformer_ros import __version__
from rtformer_ros.classes import ClassSet
from rtformer_ros.errors import RtformerError, first_line
from rtformer_ros.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMetadata
from rtformer_ros.model.checkpoint import load_checkpoint
from rtformer_ros.model.rtformer import RTFormer, resize, variant_of

__all__ = ['DEFAULT_OPSET', 'ExportError', 'FrameToLabels', 'export_checkpoint', 'export_model']

DEFAULT_OPSET = 18

# Kept in fp32 inside an fp16 graph: normalisations whose sums/exponents overflow or lose the 1e-6 of GDN.
_FP32_OPS = ['Softmax', 'Exp', 'Reciprocal', 'ReduceSum', 'ReduceMax', 'ReduceMean', 'Div', 'ArgMax', 'Cast', 'Resize',
             'Erf']


class ExportError(RtformerError, RuntimeError):
    """The checkpoint cannot be exported as asked."""


class FrameToLabels(nn.Module):
    """uint8 (1,H,W,3) RGB -> labels uint8 (1,H,W) [, confidence (1,H,W)]: the deployed graph's whole job.

    With ``net_size`` the network runs at that (H, W): the normalised frame is resized to it bilinearly and the
    logits come back at the frame's size, so the graph's I/O stays the camera's size. With ``flip`` the network
    also runs on the mirrored frame (one batch of two) and the two logit maps are averaged before the argmax.
    """

    def __init__(self, model: RTFormer, confidence: bool = False, net_size: tuple[int, int] | None = None,
                 flip: bool = False) -> None:
        super().__init__()
        self.model = model
        self.confidence = confidence
        self.net_size = tuple(net_size) if net_size else None
        self.flip = flip
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add; folded into constants in the graph.
        self.register_buffer('scale', 1.0 / (255.0 * std), persistent=False)
        self.register_buffer('shift', -mean / std, persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = image.permute(0, 3, 1, 2).float() * self.scale + self.shift
        size = tuple(x.shape[2:])
        if self.net_size and self.net_size != size:
            x = resize(x, self.net_size)
        if self.flip:
            both = self.model(torch.cat([x, x.flip(3)]), out_size=size)
            logits = (both[:1] + both[1:].flip(3)) * 0.5
        else:
            logits = self.model(x, out_size=size)
        labels = logits.argmax(dim=1).to(torch.uint8)
        if not self.confidence:
            return (labels,)
        # The max softmax probability without the softmax: max_c exp(l_c) / sum exp(l) = 1 / sum exp(l - max l).
        # A full Softmax over the class axis (ORT transposes it to the last axis) cost ~30 % of the CPU frame.
        top = logits.amax(dim=1, keepdim=True)
        return labels, torch.reciprocal(torch.exp(logits - top).sum(dim=1))


def export_model(model: RTFormer, classes: ClassSet, out: str | Path, size: tuple[int, int], *,
                 dataset: str | None = None, confidence: bool = False, fp16: bool = False,
                 net_size: tuple[int, int] | None = None, flip: bool = False, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` at a fixed ``size`` (H, W) with in-graph pre/post-processing and metadata.

    Args:
        model: the network (any mode; exported in eval mode, so the aux head is left out).
        classes: names/palette written into the metadata.
        out: destination ``.onnx``.
        size: (H, W) of the graph input.
        dataset: dataset name for the metadata (default ``classes.name``).
        confidence: also output the max softmax probability per pixel.
        fp16: weights and compute in fp16 (normalisations kept in fp32), I/O unchanged.
        net_size: (H, W) the network runs at inside the graph (default ``size``). A model trained with random
            rescaling on small crops can score better on frames enlarged a little (see models/README.md).
        flip: test-time flip: average the logits of the frame and of its mirror (about twice the compute).
        opset: ONNX opset.

    Raises:
        ExportError: the exporter failed (message names the cause).
    """
    out = Path(out)
    model = model.eval()
    net_size = tuple(net_size or size)
    wrapper = FrameToLabels(model, confidence=confidence, net_size=net_size, flip=flip).eval()
    image = torch.zeros(1, size[0], size[1], 3, dtype=torch.uint8)
    names = ['labels', 'confidence'] if confidence else ['labels']
    try:
        graph = _torch_export(wrapper, image, names, opset)
    except Exception as err:
        msg = f'{out}: export failed ({type(err).__name__}: {first_line(err)})'
        raise ExportError(msg) from err
    if fp16:
        graph = _to_fp16(graph)
    del graph.graph.value_info[:]  # re-infer every intermediate shape/type from scratch (fp16 leaves stale ones)
    graph = onnx.shape_inference.infer_shapes(graph)
    meta = ModelMetadata(
        variant=variant_of(model.cfg), dataset=dataset or classes.name, class_names=classes.names,
        palette=classes.palette, input_size=size, net_size=net_size, precision='fp16' if fp16 else 'fp32',
        confidence=confidence, package_version=__version__, flip=flip,
    )
    _make_deterministic(graph)
    onnx.helper.set_model_props(graph, meta.to_props())
    onnx.checker.check_model(graph, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, out)
    return out


def export_checkpoint(ckpt_path: str | Path, out: str | Path, size: tuple[int, int], **kwargs) -> Path:
    """`export_model` for a checkpoint file written by ``rtformer convert`` or ``rtformer train``."""
    ckpt = load_checkpoint(ckpt_path)
    return export_model(ckpt.model, ckpt.classes, out, size, **kwargs)


def _torch_export(module: nn.Module, image: torch.Tensor, output_names: list[str], opset: int) -> onnx.ModelProto:
    # torch.onnx (dynamo) prints progress and warns about optional torchvision ops; keep the CLI quiet.
    logging.getLogger('torch.onnx').setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(module, (image,), input_names=['image'], output_names=output_names,
                                    opset_version=opset, dynamo=True, optimize=True, verbose=False)
    return program.model_proto


def _to_fp16(graph: onnx.ModelProto) -> onnx.ModelProto:
    # ONNX Runtime ships the standard fp32->fp16 graph converter. The image and labels are uint8 and stay so;
    # the confidence output becomes float16 (half the bytes to the host).
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        graph = convert_float_to_float16(graph, keep_io_types=False, op_block_list=_FP32_OPS)
    _topological_sort(graph.graph)  # the converter appends its Cast nodes at the end
    return graph


def _topological_sort(graph: onnx.GraphProto) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {''}
    pending, ordered = list(graph.node), []
    while pending:
        remaining = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise ExportError('fp16 conversion left a graph with a cycle or a dangling input')
        pending = remaining
    del graph.node[:]
    graph.node.extend(ordered)


def _make_deterministic(graph: onnx.ModelProto) -> None:
    # Drop exporter doc strings (they may carry source paths and line numbers) so a checkpoint + size always
    # gives the same bytes.
    graph.doc_string = ''
    graph.producer_version = ''
    for node in graph.graph.node:
        node.doc_string = ''
        del node.metadata_props[:]
    for fn in graph.functions:
        fn.doc_string = ''
