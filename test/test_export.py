"""`rtformer export`: frame-in/labels-out graphs, metadata, hygiene, determinism, agreement with PyTorch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers import rtformer, rtformer_error

try:  # dev-only (requirements-dev.txt): absent on robots, skipped there
    import torch
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)

from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMetadata


@pytest.fixture(scope='module')
def checkpoint(paddle_fixtures, tmp_path_factory) -> Path:
    """The official-format fixture weights (calibrated BN, attention at unit scale), converted."""
    out = tmp_path_factory.mktemp('ckpt') / 'slim_c19.pt'
    assert rtformer('convert', paddle_fixtures / 'rtformer_slim_c19.pdparams', '-o', out,
                    '--variant', 'slim', '--num-classes', '19', '--dataset', 'cityscapes').rc == 0
    return out


@pytest.fixture(scope='module')
def exported(checkpoint, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp('onnx')
    paths = {}
    for name, extra in (('fp32', []), ('fp16', ['--fp16']), ('conf', ['--confidence']),
                        ('net', ['--net-size', '480x640']), ('flip', ['--flip'])):
        paths[name] = out / f'{name}.onnx'
        assert rtformer('export', checkpoint, '-o', paths[name], '--size', '360x480', *extra).rc == 0
    return paths


def _val_frames(camvid_dir: Path, count: int) -> list[np.ndarray]:
    files = sorted((camvid_dir / 'val').glob('*.png'))[:: max(1, 101 // count)][:count]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


@pytest.mark.parametrize('size', ['360x480', '512x1024', '1024x2048'])
def test_model_exports_at_deployment_sizes_and_passes_the_checker(checkpoint, tmp_path, size):
    out = tmp_path / 'm.onnx'
    assert rtformer('export', checkpoint, '-o', out, '--size', size).rc == 0
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    height, width = (int(v) for v in size.split('x'))
    (image,), (labels,) = model.graph.input, model.graph.output
    assert image.name == 'image' and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in image.type.tensor_type.shape.dim] == [1, height, width, 3]
    assert labels.name == 'labels' and labels.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in labels.type.tensor_type.shape.dim] == [1, height, width]


def test_graph_is_clean_and_static(exported):
    model = onnx.load(exported['fp32'])
    names = {i.name for i in model.graph.initializer}
    assert not any('seghead_extra' in n for n in names), 'training-only aux head left in the graph'
    assert model.graph.value_info, 'intermediate shapes not inferred'
    for info in model.graph.value_info:
        dims = info.type.tensor_type.shape.dim
        assert all(d.HasField('dim_value') for d in dims), f'{info.name} has a dynamic dimension'
    ops = {n.op_type for n in model.graph.node}
    assert 'ArgMax' in ops and not ops & {'Dropout', 'If', 'Loop'}


def test_metadata_round_trips_through_the_engine(exported):
    with SegmentationEngine(exported['conf'], providers='cpu', warmup=0) as engine:
        meta = engine.metadata
    assert meta.variant == 'slim' and meta.dataset == 'cityscapes' and meta.num_classes == 19
    assert meta.class_names[0] == 'road' and meta.palette[0] == (128, 64, 128)
    assert meta.input_size == meta.net_size == (360, 480) and meta.confidence and meta.precision == 'fp32'
    assert meta.mean == IMAGENET_MEAN and meta.std == IMAGENET_STD
    props = {p.key: p.value for p in onnx.load(exported['fp16']).metadata_props}
    assert ModelMetadata.from_props(props).precision == 'fp16'
    del props['rtformer.net_size']  # files from before --net-size: the network ran at the input size
    assert ModelMetadata.from_props(props).net_size == (360, 480)


def test_export_is_deterministic(checkpoint, exported, tmp_path):
    again = tmp_path / 'again.onnx'
    assert rtformer('export', checkpoint, '-o', again, '--size', '360x480').rc == 0
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (exported['fp32'], again)]
    assert digest[0] == digest[1]


def test_onnx_labels_match_pytorch_argmax_on_camvid_val(checkpoint, exported, camvid_dir):
    from rtformer_ros.model import load_checkpoint

    model = load_checkpoint(checkpoint).model
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    same = total = 0
    with SegmentationEngine(exported['fp32'], providers='cpu', warmup=0) as engine, torch.no_grad():
        for frame in _val_frames(camvid_dir, 5):
            x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 - mean) / std
            reference = model(x).argmax(dim=1)[0].numpy()
            same += int((engine.infer(frame).labels == reference).sum())
            total += reference.size
    assert same / total >= 0.999


def test_net_size_runs_the_network_on_the_enlarged_frame_and_keeps_the_io_size(checkpoint, exported, camvid_dir):
    from rtformer_ros.model import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    graph = onnx.load(exported['net'])
    (image,), (labels,) = graph.graph.input, graph.graph.output
    assert [d.dim_value for d in image.type.tensor_type.shape.dim] == [1, 360, 480, 3]
    assert [d.dim_value for d in labels.type.tensor_type.shape.dim] == [1, 360, 480]
    same = total = changed = 0
    with SegmentationEngine(exported['net'], providers='cpu', warmup=0) as engine, \
            SegmentationEngine(exported['fp32'], providers='cpu', warmup=0) as plain, torch.no_grad():
        assert engine.metadata.net_size == (480, 640) and engine.input_size == (360, 480)
        for frame in _val_frames(camvid_dir, 3):
            x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 - mean) / std
            x = torch.nn.functional.interpolate(x, size=(480, 640), mode='bilinear', align_corners=False)
            reference = model(x, out_size=(360, 480)).argmax(dim=1)[0].numpy()
            got = engine.infer(frame).labels
            same += int((got == reference).sum())
            total += reference.size
            changed += int((got != plain.infer(frame).labels).sum())
    assert same / total >= 0.999
    assert changed > 0.001 * total, 'the network did not run at another size'


def test_flip_averages_the_logits_of_the_frame_and_its_mirror(checkpoint, exported, camvid_dir):
    from rtformer_ros.model import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    same = total = changed = 0
    with SegmentationEngine(exported['flip'], providers='cpu', warmup=0) as engine, \
            SegmentationEngine(exported['fp32'], providers='cpu', warmup=0) as plain, torch.no_grad():
        assert engine.metadata.flip and not plain.metadata.flip
        for frame in _val_frames(camvid_dir, 3):
            x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 - mean) / std
            reference = ((model(x) + model(x.flip(3)).flip(3)) / 2).argmax(dim=1)[0].numpy()
            got = engine.infer(frame).labels
            same += int((got == reference).sum())
            total += reference.size
            changed += int((got != plain.infer(frame).labels).sum())
    assert same / total >= 0.999
    assert changed > 0.001 * total, 'the mirrored frame changed nothing'
    result = rtformer('info', exported['flip'], '--json')
    assert result.rc == 0 and json.loads(result.out)['flip'] is True


def test_info_describes_an_exported_model(exported):
    result = rtformer('info', exported['net'], '--json')
    assert result.rc == 0
    info = json.loads(result.out)
    assert (info['variant'], info['dataset'], info['num_classes']) == ('slim', 'cityscapes', 19)
    assert (info['input_size'], info['net_size'], info['precision']) == ('360x480', '480x640', 'fp32')


def test_fp16_labels_agree_with_fp32_and_io_is_unchanged(exported, camvid_dir):
    with SegmentationEngine(exported['fp32'], providers='cpu', warmup=0) as fp32, \
            SegmentationEngine(exported['fp16'], providers='cpu', warmup=0) as fp16:
        frames = _val_frames(camvid_dir, 5)
        agreement = np.mean([(fp32.infer(f).labels == fp16.infer(f).labels).mean() for f in frames])
    assert agreement >= 0.995
    image, = onnx.load(exported['fp16']).graph.input
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_confidence_output_is_the_max_softmax_probability(checkpoint, exported):
    from rtformer_ros.model import load_checkpoint

    # Exported as 1 / sum(exp(l - max l)), no Softmax: it must equal PyTorch's softmax(logits).amax.
    model = load_checkpoint(checkpoint).model.eval()
    frame = np.random.default_rng(3).integers(0, 256, (360, 480, 3), np.uint8)
    x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        reference = model(x).softmax(dim=1).amax(dim=1)[0].numpy()
    with SegmentationEngine(exported['conf'], providers='cpu', warmup=0) as engine:
        seg = engine.infer(frame)
    assert seg.confidence is not None and seg.confidence.dtype == np.float32
    assert seg.confidence.shape == seg.labels.shape
    assert 1 / 19 - 1e-6 <= seg.confidence.min() and seg.confidence.max() <= 1 + 1e-6
    np.testing.assert_allclose(seg.confidence, reference, atol=1e-4)
    tail = [n.op_type for n in onnx.load(exported['conf']).graph.node]
    assert 'Softmax' not in tail[max(i for i, op in enumerate(tail) if op == 'Conv'):]


@pytest.mark.parametrize('kind', ['missing', 'foreign', 'truncated'])
def test_export_of_a_bad_checkpoint_fails_with_one_line(checkpoint, tmp_path, kind):
    bad = tmp_path / f'{kind}.pt'
    if kind == 'foreign':
        torch.save({'state_dict': {}}, bad)
    elif kind == 'truncated':
        bad.write_bytes(checkpoint.read_bytes()[:4096])
    assert f'{kind}.pt' in rtformer_error('export', bad, '-o', tmp_path / 'x.onnx', '--size', '360x480')
    assert not (tmp_path / 'x.onnx').exists()


def test_export_rejects_a_bad_size(checkpoint, tmp_path):
    result = rtformer('export', checkpoint, '-o', tmp_path / 'x.onnx', '--size', '32x32')
    assert result.rc == 2 and 'must be >= 64' in result.err, result
