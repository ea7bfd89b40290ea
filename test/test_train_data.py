"""Dataset layouts, the pre-training data check and the resumable sampler of `rtformer train`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import rtformer
from PIL import Image

from rtformer_ros.bags.reader import BagReader
from rtformer_ros.classes import IGNORE_INDEX
from rtformer_ros.datasets import (
    DatasetError,
    LabelMap,
    camvid_samples,
    check_samples,
    cityscapes_samples,
    folder_classes,
    folder_samples,
)
from rtformer_ros.image.codec import decode_image, decode_labels
from rtformer_ros.train import main
from rtformer_ros.train.datasets import IterationBatches, SegmentationDataset

CAMVID_MAP = LabelMap(11, void_ids=(11,))


def write_pair(image: Path, label: Path, size: tuple[int, int] = (64, 80), ids: tuple[int, ...] = (0, 1, 2),
               label_size: tuple[int, int] | None = None, seed: int = 0) -> None:
    """A random RGB image and a label (H, W) drawing from ``ids``."""
    rng = np.random.default_rng(seed)
    image.parent.mkdir(parents=True, exist_ok=True)
    label.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image)
    Image.fromarray(rng.choice(np.asarray(ids, np.uint8), label_size or size)).save(label)


def make_camvid(root: Path, frames: int = 3) -> Path:
    for split in ('train', 'val'):
        for i in range(frames):
            write_pair(root / split / f'f{i}.png', root / f'{split}annot' / f'f{i}.png', ids=(0, 5, 10, 11), seed=i)
    return root


def test_camvid_loader_maps_void_11_to_ignore(camvid_dir: Path) -> None:
    samples = camvid_samples(camvid_dir, 'train')
    assert len(samples) == 367
    assert all(s.label == camvid_dir / 'trainannot' / s.image.name for s in samples)
    dataset = SegmentationDataset(samples[:1], CAMVID_MAP)
    raw = np.asarray(Image.open(samples[0].label))
    assert (raw == 11).any()
    image, label = dataset[0]
    assert image.shape == (3, 360, 480) and image.dtype == np.float32
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, np.where(raw == 11, IGNORE_INDEX, raw))


def test_camvid_data_check_passes_on_the_shared_split(camvid_dir: Path) -> None:
    check_samples(camvid_samples(camvid_dir, 'val'), CAMVID_MAP)


def test_cityscapes_layout_pairs_train_id_labels(tmp_path: Path) -> None:
    for city, frame in (('aachen', 'aachen_000000_000019'), ('bremen', 'bremen_000001_000019')):
        write_pair(tmp_path / 'leftImg8bit' / 'train' / city / f'{frame}_leftImg8bit.png',
                   tmp_path / 'gtFine' / 'train' / city / f'{frame}_gtFine_labelTrainIds.png', ids=(0, 18, 255))
    samples = cityscapes_samples(tmp_path, 'train')
    assert [s.image.parent.name for s in samples] == ['aachen', 'bremen']
    label_map = LabelMap(19)
    check_samples(samples, label_map)
    _, label = SegmentationDataset(samples, label_map)[1]
    assert set(np.unique(label)) == {0, 18, 255}


def test_folder_layout_with_suffix_names_file_and_void_id(tmp_path: Path) -> None:
    for i in range(2):
        write_pair(tmp_path / 'img' / f'a{i}.jpg', tmp_path / 'lbl' / f'a{i}_mask.png', ids=(0, 1, 2, 7), seed=i)
    (tmp_path / 'names.txt').write_text('ground\nwall\n\nsky\n')
    classes = folder_classes(str(tmp_path / 'names.txt'), None)
    assert classes.names == ('ground', 'wall', 'sky')
    samples = folder_samples(tmp_path / 'img', tmp_path / 'lbl', '_mask')
    label_map = LabelMap(classes.num_classes, void_ids=(7,))
    check_samples(samples, label_map)
    image, label = SegmentationDataset(samples, label_map)[0]
    assert image.shape == (3, 64, 80)
    assert set(np.unique(label)) == {0, 1, 2, IGNORE_INDEX}
    assert folder_classes('mydata', 5).names == tuple(f'class_{i}' for i in range(5))
    with pytest.raises(DatasetError, match='names.txt: 3 class names, expected 4'):
        folder_classes(str(tmp_path / 'names.txt'), 4)


def test_missing_label_is_named(tmp_path: Path) -> None:
    root = make_camvid(tmp_path)
    (root / 'trainannot' / 'f1.png').unlink()
    with pytest.raises(DatasetError, match=r'train/f1\.png: no label named f1\.\* in .*trainannot$'):
        camvid_samples(root, 'train')


def test_size_mismatch_is_named(tmp_path: Path) -> None:
    write_pair(tmp_path / 'img' / 'a.png', tmp_path / 'lbl' / 'a.png', size=(64, 80), label_size=(64, 81))
    with pytest.raises(DatasetError, match=r'lbl/a\.png: label is 64x81 \(HxW\) but image .*img/a\.png is 64x80'):
        check_samples(folder_samples(tmp_path / 'img', tmp_path / 'lbl'), LabelMap(3))


def test_out_of_range_label_id_is_named(tmp_path: Path) -> None:
    write_pair(tmp_path / 'img' / 'a.png', tmp_path / 'lbl' / 'a.png', ids=(0, 12, 40, 255))
    with pytest.raises(DatasetError, match=r'lbl/a\.png: label ids 12, 40 out of range \(classes 0\.\.10, void 11'):
        check_samples(folder_samples(tmp_path / 'img', tmp_path / 'lbl'), CAMVID_MAP)


def test_colour_label_is_refused(tmp_path: Path) -> None:
    write_pair(tmp_path / 'img' / 'a.png', tmp_path / 'lbl' / 'a.png')
    Image.open(tmp_path / 'lbl' / 'a.png').convert('RGB').save(tmp_path / 'lbl' / 'a.png')
    with pytest.raises(DatasetError, match=r'lbl/a\.png: label image has mode RGB'):
        check_samples(folder_samples(tmp_path / 'img', tmp_path / 'lbl'), LabelMap(3))


def test_training_and_bag_from_dataset_take_the_same_files_and_labels(tmp_path: Path) -> None:
    """One rule for both: .tif/.ppm/.bmp images, labels of any lossless suffix, palette labels as their indices."""
    rng = np.random.default_rng(5)
    ids = {'a': rng.integers(0, 3, (8, 12)), 'b': rng.integers(0, 3, (8, 12)), 'c': rng.integers(0, 3, (8, 12))}
    ids['c'][0, :4] = 7  # void
    for stem, image_ext, label_ext in (('a', '.tif', '.png'), ('b', '.ppm', '.bmp'), ('c', '.bmp', '.tif')):
        (tmp_path / 'img').mkdir(exist_ok=True)
        (tmp_path / 'lbl').mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(tmp_path / 'img' / f'{stem}{image_ext}')
        Image.fromarray(ids[stem].astype(np.uint8)).save(tmp_path / 'lbl' / f'{stem}{label_ext}')
    palette = Image.fromarray(ids['a'].astype(np.uint8), 'P')  # a palette PNG: its pixels are the indices
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / 'lbl' / 'a.png')
    samples = folder_samples(tmp_path / 'img', tmp_path / 'lbl')
    assert [(s.image.name, s.label.name) for s in samples] == [('a.tif', 'a.png'), ('b.ppm', 'b.bmp'),
                                                               ('c.bmp', 'c.tif')]
    label_map = LabelMap(3, void_ids=(7,))
    check_samples(samples, label_map)
    trained = [SegmentationDataset(samples, label_map).load(i) for i in range(3)]
    expect = [np.where(ids[stem] == 7, IGNORE_INDEX, ids[stem]) for stem in 'abc']
    for (_, label), want in zip(trained, expect, strict=True):
        np.testing.assert_array_equal(label, want)
    result = rtformer('bag-from-dataset', '-o', tmp_path / 'bag', '--images', tmp_path / 'img',
                      '--labels', tmp_path / 'lbl', '--void', '7')
    assert result.rc == 0, result.err
    with BagReader(tmp_path / 'bag') as bag:
        images = [decode_image(bag.deserialize(raw, t)) for t, _, raw in bag.messages(['/camera/image_raw'])]
        labels = [decode_labels(bag.deserialize(raw, t)) for t, _, raw in bag.messages(['/camera/labels'])]
    for (image, label), (bgr, order), bag_label in zip(trained, images, labels, strict=True):
        assert order == 'bgr'
        np.testing.assert_array_equal(bgr[..., ::-1], image)
        np.testing.assert_array_equal(bag_label, label)


@pytest.mark.parametrize('damage', ['missing label', 'size mismatch', 'id out of range'])
def test_train_command_fails_on_bad_data_before_training(tmp_path: Path, damage: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = make_camvid(tmp_path / 'camvid')
    bad = root / 'valannot' / 'f2.png'
    if damage == 'missing label':
        bad.unlink()
    elif damage == 'size mismatch':
        write_pair(root / 'val' / 'f2.png', bad, label_size=(60, 80))
    else:
        write_pair(root / 'val' / 'f2.png', bad, ids=(3, 13))
    out = tmp_path / 'run'
    code = main(['--data-root', str(root), '--out', str(out), '--crop', '64x64', '--batch-size', '2',
                 '--iters', '2', '--workers', '0'])
    assert code == 1
    err = capsys.readouterr().err
    named = root / 'val' / 'f2.png' if damage == 'missing label' else bad  # a missing label: its image is named
    assert f'rtformer train: {named}: ' in err
    assert not out.exists()  # nothing was built or written: the check runs first


def test_iteration_batches_resume_mid_epoch_and_reshuffle_per_epoch() -> None:
    full = list(IterationBatches(10, 3, seed=7, start=0, stop=9))
    assert list(IterationBatches(10, 3, seed=7, start=4, stop=9)) == full[4:]
    per_epoch = 10 // 3
    epochs = [[i for batch in full[e * per_epoch:(e + 1) * per_epoch] for i, _ in batch] for e in range(3)]
    assert all(len(set(e)) == 9 for e in epochs)  # no repeats within an epoch (one partial batch dropped)
    assert epochs[0] != epochs[1]
    seeds = {seed for batch in full for _, seed in batch}
    assert len(seeds) == 27  # every sample draw has its own augmentation seed
