"""Class names and colour palettes of every dataset the package knows: the only place they live.

Palettes are RGB. CamVid and Cityscapes use their customary palettes; ADE20K and COCO-Stuff use the
PASCAL VOC bit-interleaved colour map (deterministic and distinct for 256 ids), since no single
"official" palette exists for them across toolkits.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtformer_ros.errors import RtformerError

__all__ = ['DATASETS', 'IGNORE_INDEX', 'ClassSet', 'ClassesError', 'get_classes', 'voc_palette']

IGNORE_INDEX = 255
"""Label id that marks pixels to ignore in losses and metrics (void)."""

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ClassSet:
    """Names and RGB palette of a dataset's classes, indexed by class id."""

    name: str
    names: tuple[str, ...]
    palette: tuple[Color, ...]

    def __post_init__(self) -> None:
        assert len(self.names) == len(self.palette), self.name

    @property
    def num_classes(self) -> int:
        return len(self.names)


def voc_palette(n: int) -> tuple[Color, ...]:
    """PASCAL VOC colour map: the bits of the id spread over the high bits of R, G and B."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


# CamVid, 11 classes as in SegNet's 360x480 split; id 11 (void) is remapped to IGNORE_INDEX.
_CAMVID = (
    ('Sky', (128, 128, 128)),
    ('Building', (128, 0, 0)),
    ('Pole', (192, 192, 128)),
    ('Road', (128, 64, 128)),
    ('Pavement', (60, 40, 222)),
    ('Tree', (128, 128, 0)),
    ('SignSymbol', (192, 128, 128)),
    ('Fence', (64, 64, 128)),
    ('Car', (64, 0, 128)),
    ('Pedestrian', (64, 64, 0)),
    ('Bicyclist', (0, 128, 192)),
)

# Cityscapes, the 19 evaluated trainIds.
_CITYSCAPES = (
    ('road', (128, 64, 128)),
    ('sidewalk', (244, 35, 232)),
    ('building', (70, 70, 70)),
    ('wall', (102, 102, 156)),
    ('fence', (190, 153, 153)),
    ('pole', (153, 153, 153)),
    ('traffic light', (250, 170, 30)),
    ('traffic sign', (220, 220, 0)),
    ('vegetation', (107, 142, 35)),
    ('terrain', (152, 251, 152)),
    ('sky', (70, 130, 180)),
    ('person', (220, 20, 60)),
    ('rider', (255, 0, 0)),
    ('car', (0, 0, 142)),
    ('truck', (0, 0, 70)),
    ('bus', (0, 60, 100)),
    ('train', (0, 80, 100)),
    ('motorcycle', (0, 0, 230)),
    ('bicycle', (119, 11, 32)),
)

# ADE20K SceneParsing, 150 classes (label - 1; 0 = "other" becomes IGNORE_INDEX).
_ADE20K = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
    'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
    'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
    'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
    'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path',
    'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase',
    'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver', 'airplane',
    'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
    'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool',
    'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture',
    'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
)

# COCO-Stuff-164k, 171 classes: 80 things then 91 stuff, ids made contiguous.
_COCO_STUFF = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
    'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis',
    'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
    'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
    'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush',
    'banner', 'blanket', 'branch', 'bridge', 'building-other', 'bush', 'cabinet', 'cage', 'cardboard', 'carpet',
    'ceiling-other', 'ceiling-tile', 'cloth', 'clothes', 'clouds', 'counter', 'cupboard', 'curtain', 'desk-stuff',
    'dirt', 'door-stuff', 'fence', 'floor-marble', 'floor-other', 'floor-stone', 'floor-tile', 'floor-wood',
    'flower', 'fog', 'food-other', 'fruit', 'furniture-other', 'grass', 'gravel', 'ground-other', 'hill', 'house',
    'leaves', 'light', 'mat', 'metal', 'mirror-stuff', 'moss', 'mountain', 'mud', 'napkin', 'net', 'paper',
    'pavement', 'pillow', 'plant-other', 'plastic', 'platform', 'playingfield', 'railing', 'railroad', 'river',
    'road', 'rock', 'roof', 'rug', 'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow',
    'solid-other', 'stairs', 'stone', 'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel',
    'tree', 'vegetable', 'wall-brick', 'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone', 'wall-tile',
    'wall-wood', 'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood',
)


def _from_pairs(name: str, pairs: tuple[tuple[str, Color], ...]) -> ClassSet:
    return ClassSet(name, tuple(n for n, _ in pairs), tuple(c for _, c in pairs))


def _from_names(name: str, names: tuple[str, ...]) -> ClassSet:
    # Id 0 of the VOC map is black; shift by one so no class is drawn black (black reads as "nothing").
    return ClassSet(name, names, voc_palette(len(names) + 1)[1:])


DATASETS: dict[str, ClassSet] = {
    'camvid': _from_pairs('camvid', _CAMVID),
    'cityscapes': _from_pairs('cityscapes', _CITYSCAPES),
    'ade20k': _from_names('ade20k', _ADE20K),
    'coco_stuff': _from_names('coco_stuff', _COCO_STUFF),
}


class ClassesError(RtformerError, ValueError):
    """A dataset name and class count that do not go together."""


def get_classes(dataset: str, num_classes: int | None = None) -> ClassSet:
    """Classes of a known dataset, or generic ``class_<i>`` names when the dataset is unknown.

    Args:
        dataset: a key of ``DATASETS`` or any other name.
        num_classes: expected class count; required for an unknown dataset, checked for a known one.

    Raises:
        ClassesError: the count does not match the dataset, or an unknown dataset has no count.
    """
    known = DATASETS.get(dataset)
    if known is not None:
        if num_classes is not None and num_classes != known.num_classes:
            msg = f'dataset {dataset!r} has {known.num_classes} classes, not {num_classes}'
            raise ClassesError(msg)
        return known
    if not num_classes or num_classes < 1:
        msg = f'unknown dataset {dataset!r}: give the number of classes (known: {", ".join(DATASETS)})'
        raise ClassesError(msg)
    return _from_names(dataset, tuple(f'class_{i}' for i in range(num_classes)))
