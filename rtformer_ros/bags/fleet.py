"""Evaluation over many bags: list them, shard them, score them bag by bag, merge the parts exactly.

A fleet run is one *part* per bag (its confusion matrix, counts, latency samples and a few sample frames),
merged in the order of the bag listing. ``--shard I/N`` scores one share of the listing and writes its parts
to a JSON file; ``rtformer eval-merge`` merges the parts of all shards with the same code, so N merged shards
give the report of one run over all bags: the confusion matrix is a sum of integer counts, frame counts are
sums, latency samples are concatenated in listing order and the sample frames are picked from the same
candidates. Only the timings themselves (measurements) differ between two runs.

A bag that cannot be scored (unreadable, a topic missing, nothing paired) is recorded with its reason and the
run goes on: one truncated recording should not cost the report of a fleet.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtformer_ros.bags import BagError
from rtformer_ros.bags.evaluate import EvalOptions, EvalResult, SampleView, evaluate, load_engine
from rtformer_ros.classes import get_classes
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.metrics import ConfusionMatrix
from rtformer_ros.util import progress as progress_bar

__all__ = ['PART_FORMAT', 'BagPart', 'Shard', 'find_bags', 'merge_parts', 'parse_shard', 'read_shards',
           'score_bags', 'shard_indices', 'write_shard']

PART_FORMAT = 'rtformer-eval-part/2'  # 2: per-frame confidence statistics
BAG_FILES = ('.db3', '.mcap')


# ------------------------------------------------------------------------------------------------ listing

def _bag_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def _collect(path: Path, found: set[Path]) -> None:
    """A bag folder (metadata.yaml), a bag file, or a folder searched for them (not inside a bag folder)."""
    if path.is_file():
        if path.suffix in BAG_FILES:  # the storage file of a bag folder stands for the folder
            found.add(path.parent if (path.parent / 'metadata.yaml').is_file() else path)
        return
    if (path / 'metadata.yaml').is_file():
        found.add(path)
        return
    for child in sorted(path.iterdir()) if path.is_dir() else ():
        _collect(child, found)


def find_bags(specs: Sequence[str]) -> list[tuple[str, int]]:
    """(path, bytes) of every bag that ``specs`` name, sorted by path: folders are searched, globs expanded.

    A bag is a folder with ``metadata.yaml`` or a ``.db3``/``.mcap`` file outside such a folder. The sorted
    listing is what shards agree on, so every shard of a fleet must see the same files under the same paths.

    Raises:
        BagError: a spec that matches nothing, or no bag at all.
    """
    found: set[Path] = set()
    for spec in specs:
        matches = sorted(glob.glob(spec, recursive=True)) if glob.has_magic(spec) else [spec]
        mine: set[Path] = set()
        for match in matches:
            if os.path.exists(match):
                _collect(Path(os.path.normpath(match)), mine)
        if not mine:
            msg = f'{spec}: no bags there (rosbag2 folders with metadata.yaml, or .db3/.mcap files)'
            raise BagError(msg)
        found |= mine
    return [(str(path), _bag_bytes(path)) for path in sorted(found, key=str)]


def parse_shard(text: str) -> tuple[int, int]:
    """``'I/N'`` -> (I, N) with 0 <= I < N, as Kubernetes' JOB_COMPLETION_INDEX counts. I = N is taken as 0, so
    1-based indices (``sbatch --array=1-N``) name the same N shards; mixing the two is caught by the merge.

    Raises:
        ValueError: not of that form.
    """
    index, sep, count = text.partition('/')
    if not sep or not index.strip().isdigit() or not count.strip().isdigit() or not 0 <= int(index) <= int(count) \
            or int(count) < 1:
        msg = f'--shard {text!r}: expected I/N with 0 <= I < N (or 1 <= I <= N), e.g. 0/4'
        raise ValueError(msg)
    return int(index) % int(count), int(count)


def shard_indices(sizes: Sequence[int], index: int, count: int) -> list[int]:
    """The listing positions shard ``index`` of ``count`` scores: biggest bags first, each to the lightest shard.

    Deterministic in the listing alone, so shards that never talk to each other split it the same way.
    """
    loads = [0] * count
    owner = [0] * len(sizes)
    for position in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        shard = min(range(count), key=lambda s: (loads[s], s))
        owner[position] = shard
        loads[shard] += sizes[position]
    return [i for i, shard in enumerate(owner) if shard == index]


# ------------------------------------------------------------------------------------------------ parts

@dataclass(eq=False)
class BagPart:
    """What one bag contributed: enough to merge exactly, nothing that needs the bag again."""

    index: int  # position in the listing
    path: str
    error: str | None = None  # why the bag could not be scored; then nothing else is set
    frames: int = 0
    paired: int = 0
    unpaired: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    confusion: np.ndarray | None = None  # (K, K) int64
    ignore_index: int | None = None
    class_names: list[str] = field(default_factory=list)
    palette: list[list[int]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    model: dict[str, Any] | None = None
    samples: list[SampleView] = field(default_factory=list)
    confidence: list[list[float]] = field(default_factory=list)  # per frame: mean, share under LOW_CONFIDENCE

    @classmethod
    def of(cls, index: int, path: str, result: EvalResult) -> BagPart:
        return cls(index, path, None, result.frames, result.paired, dict(result.unpaired), dict(result.skipped),
                   result.confusion.matrix.copy(), result.confusion.ignore_index, list(result.class_names),
                   [list(c) for c in result.palette], list(result.latencies_ms), result.wall_s, result.model,
                   list(result.samples), [list(c) for c in result.confidence])


def _png(image: np.ndarray | None) -> str | None:
    if image is None:
        return None
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    return base64.b64encode(cv2.imencode('.png', pixels)[1].tobytes()).decode('ascii')


def _unpng(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    image = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def _part_json(part: BagPart) -> dict[str, Any]:
    data = asdict(part)  # deep-copies the arrays; replaced below by JSON forms
    data['confusion'] = None if part.confusion is None else part.confusion.tolist()
    data['samples'] = [{'stamp_ns': s.stamp_ns, 'rgb': _png(s.rgb), 'labels': _png(s.labels), 'pred': _png(s.pred)}
                       for s in part.samples]
    return data


def _part_from_json(data: dict[str, Any]) -> BagPart:
    part = BagPart(**{**data, 'samples': []})
    if data['confusion'] is not None:
        part.confusion = np.asarray(data['confusion'], np.int64)
    part.samples = [SampleView(s['stamp_ns'], _unpng(s['rgb']), _unpng(s['labels']), _unpng(s['pred']))
                    for s in data['samples']]
    return part


# ------------------------------------------------------------------------------------------------ scoring

_worker_engine: SegmentationEngine | None = None


def _init_worker(opts: EvalOptions) -> None:
    global _worker_engine  # one engine per worker process, loaded once for all its bags
    _worker_engine = load_engine(opts)


def _score(opts: EvalOptions, engine: SegmentationEngine | None, index: int, path: str) -> BagPart:
    try:
        return BagPart.of(index, path, evaluate(replace(opts, bag=Path(path)), engine))
    except BagError as err:
        return BagPart(index, path, error=str(err))


def _score_in_worker(opts: EvalOptions, index: int, path: str) -> BagPart:
    return _score(opts, _worker_engine, index, path)


def samples_per_bag(samples: int, bags: int) -> int:
    """Sample candidates each bag keeps so that the merge can spread ``samples`` over the whole listing."""
    return math.ceil(samples / bags) if samples > 0 and bags else 0


def _in_process(opts: EvalOptions, listing: Sequence[tuple[str, int]], indices: Sequence[int]) -> Iterator[BagPart]:
    engine = load_engine(opts)
    try:
        for index in indices:
            yield _score(opts, engine, index, listing[index][0])
    finally:
        if engine is not None:
            engine.close()


def _in_workers(opts: EvalOptions, listing: Sequence[tuple[str, int]], indices: Sequence[int],
                workers: int) -> Iterator[BagPart]:
    probe = load_engine(opts, names_only=True)  # a bad model: one clear error, not one per worker and bag
    if probe is not None:
        probe.close()
    # Each worker gets its share of the cores (ORT would otherwise start one thread per core in each).
    opts = replace(opts, threads=opts.threads or max(1, (os.cpu_count() or 1) // workers))
    # spawn: no fork of a process that may hold ORT or CUDA threads.
    with ProcessPoolExecutor(min(workers, len(indices)), get_context('spawn'), _init_worker, (opts,)) as pool:
        futures = [pool.submit(_score_in_worker, opts, index, listing[index][0]) for index in indices]
        for future in as_completed(futures):
            yield future.result()


def score_bags(opts: EvalOptions, listing: Sequence[tuple[str, int]], indices: Sequence[int], workers: int = 1,
               progress: bool | None = None) -> Iterator[BagPart]:
    """Score the bags at ``indices`` of ``listing``, in ``workers`` processes; parts in completion order.

    Raises:
        BagError: the model cannot be loaded (checked before any bag is read).
    """
    if not indices:  # a shard with no bag of its own (more shards than bags)
        return
    per_bag = replace(opts, samples=samples_per_bag(opts.samples, len(listing)), progress=False, write_bag=None)
    parts = (_in_process(per_bag, listing, indices) if workers <= 1 or len(indices) <= 1
             else _in_workers(per_bag, listing, indices, workers))
    frames = 0
    with progress_bar(total=len(indices), enabled=progress, desc='eval', unit='bag') as bar:
        for part in parts:
            frames += part.frames
            bar.set_postfix(frames=frames)
            bar.update()
            yield part


# ------------------------------------------------------------------------------------------------ shards

def model_digest(model: Path | None) -> str | None:
    """sha256 of the model file: shards must have scored the same model, wherever it was stored."""
    if model is None:
        return None
    with Path(model).open('rb') as file:
        return hashlib.file_digest(file, 'sha256').hexdigest()


@dataclass(eq=False)
class Shard:
    """One shard's partial result: the whole listing, what was scored, and its parts."""

    shard: tuple[int, int]
    listing: list[tuple[str, int]]
    setup: dict[str, Any]  # what every shard must share: topics, classes, model digest, samples
    parts: list[BagPart]
    source: str = ''  # the file it was read from

    @staticmethod
    def setup_of(opts: EvalOptions, specs: Sequence[str]) -> dict[str, Any]:
        return {'bags': list(specs), 'label_topic': opts.label_topic, 'image_topic': opts.image_topic,
                'pred_topic': opts.pred_topic, 'dataset': opts.dataset, 'ignore_index': opts.ignore_index,
                'resize': opts.resize, 'samples': opts.samples, 'model_sha256': model_digest(opts.model)}


def write_shard(shard: Shard, out: Path) -> Path:
    """Write ``part-I-of-N.json`` into folder ``out`` (created), or to ``out`` itself if it ends in .json; its path."""
    index, count = shard.shard
    name = f'part-{index:0{len(str(count - 1))}d}-of-{count}.json'  # zero-padded: the files sort in shard order
    path = Path(out) if Path(out).suffix == '.json' else Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {'format': PART_FORMAT, 'shard': list(shard.shard), 'setup': shard.setup,
            'listing': [list(entry) for entry in shard.listing],
            'parts': [_part_json(part) for part in sorted(shard.parts, key=lambda p: p.index)]}
    tmp = path.with_suffix('.json.tmp')  # a killed job leaves no half file for the merge to trip on
    tmp.write_text(json.dumps(data) + '\n')
    tmp.replace(path)
    return path


def _read_shard(path: Path) -> Shard:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BagError(f'{path}: not a readable part file ({err})') from None
    if not isinstance(data, dict) or data.get('format') != PART_FORMAT:
        msg = f'{path}: not an rtformer eval part (expected format {PART_FORMAT}, written by rtformer eval --shard)'
        raise BagError(msg)
    try:
        return Shard((int(data['shard'][0]), int(data['shard'][1])), [(str(p), int(b)) for p, b in data['listing']],
                     data['setup'], [_part_from_json(part) for part in data['parts']], str(path))
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise BagError(f'{path}: damaged part file ({type(err).__name__}: {err})') from None


def _same_run(shard: Shard, first: Shard) -> None:
    """The same bags (paths and sizes) and setup; how the bags were named on the command line may differ."""
    mine, theirs = shard.listing, first.listing
    if mine != theirs:
        what = f'{len(mine)} vs {len(theirs)} bags' if len(mine) != len(theirs) else next(
            f'{a[0]} ({a[1]} bytes) vs {b[0]} ({b[1]} bytes)' for a, b in zip(mine, theirs, strict=True) if a != b)
        raise BagError(f'{shard.source}: another run than {first.source} (bag listing differs: {what})')
    diff = [f'{key} {shard.setup.get(key)!r} vs {value!r}' for key, value in first.setup.items()
            if key != 'bags' and shard.setup.get(key) != value]
    if diff:
        raise BagError(f'{shard.source}: another run than {first.source} ({"; ".join(diff)})')


def read_shards(paths: Sequence[Path]) -> list[Shard]:
    """Read part files (a folder: its ``part-*.json``) and check they are the N shards of one fleet run.

    Raises:
        BagError: unreadable files, shards of different runs (bags, topics, model, sizes), a shard given
            twice or missing.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(path.glob('part-*.json'))
            if not inside:
                raise BagError(f'{path}: no part-*.json files')
            files += inside
        elif path.exists():
            files.append(path)
        else:
            raise BagError(f'{path}: no such part file')
    shards = [_read_shard(path) for path in files]
    first = shards[0]
    seen: dict[int, str] = {}
    for shard in shards:
        if shard.shard[1] != first.shard[1]:
            msg = f'{shard.source}: shard {shard.shard[0]}/{shard.shard[1]}, but {first.source} is of {first.shard[1]}'
            raise BagError(msg)
        _same_run(shard, first)
        if shard.shard[0] in seen:
            msg = f'shard {shard.shard[0]}/{shard.shard[1]} given twice ({seen[shard.shard[0]]}, {shard.source})'
            raise BagError(msg)
        seen[shard.shard[0]] = shard.source
    missing = sorted(set(range(first.shard[1])) - set(seen))
    if missing:
        msg = (f'missing shards {", ".join(map(str, missing))} of {first.shard[1]} '
               f'(got {", ".join(map(str, sorted(seen)))}): run them, or merge all parts')
        raise BagError(msg)
    return shards


# ------------------------------------------------------------------------------------------------ merge

def _bag_row(part: BagPart) -> dict[str, Any]:
    row: dict[str, Any] = {'path': part.path, 'frames': part.frames, 'error': part.error}
    if part.error is None:
        assert part.confusion is not None and part.ignore_index is not None
        cm = ConfusionMatrix(len(part.confusion), part.ignore_index)
        cm.matrix[:] = part.confusion
        # Scores and counts only: timings belong to the machine that ran the shard, not to the bag.
        row.update(paired=part.paired, unpaired=sum(part.unpaired.values()), skipped=sum(part.skipped.values()),
                   miou=None if math.isnan(cm.miou) else cm.miou,
                   pixel_accuracy=None if math.isnan(cm.pixel_accuracy) else cm.pixel_accuracy)
    return row


def merge_parts(opts: EvalOptions, parts: Sequence[BagPart], samples: int) -> EvalResult:
    """One ``EvalResult`` (the usual report) from the parts of all bags, merged in listing order.

    ``opts`` names the run (topics, bags as ``opts.bag``); ``samples``: frames for samples.png, spread over the
    candidates the bags kept.

    Raises:
        BagError: no frame of any bag could be scored, or bags scored with different classes.
    """
    parts = sorted(parts, key=lambda p: p.index)
    scored = [part for part in parts if part.error is None]
    if not any(part.frames for part in scored):
        failed = '; '.join(f'{part.path}: {part.error}' for part in parts if part.error)[:500]
        msg = f'no frame of {len(parts)} bags could be scored' + (f' ({failed})' if failed else '')
        raise BagError(msg)
    first = scored[0]
    generic = opts.model is None and opts.dataset is None  # classes counted from the ids, per bag: pad to the most
    size = max(len(part.confusion) for part in scored) if generic else len(first.confusion)
    for part in scored:
        if part.ignore_index != first.ignore_index or (not generic and part.class_names != first.class_names):
            msg = f'{part.path}: scored with other classes than {first.path} (another model or --ignore-index?)'
            raise BagError(msg)
    if generic:
        classes = get_classes('classes', size)
        names, palette = classes.names, classes.palette
    else:
        names, palette = tuple(first.class_names), tuple(tuple(c) for c in first.palette)
    confusion = ConfusionMatrix(size, first.ignore_index)
    result = EvalResult(opts, confusion, names, palette, model=first.model, bags=[_bag_row(p) for p in parts])
    unpaired: Counter[str] = Counter()
    candidates: list[SampleView] = []
    for part in scored:
        k = len(part.confusion)
        confusion.matrix[:k, :k] += part.confusion
        result.frames += part.frames
        result.paired += part.paired
        unpaired.update(part.unpaired)
        result.skipped.update(part.skipped)
        result.latencies_ms += part.latencies_ms
        result.confidence += [(mean, low) for mean, low in part.confidence]
        result.wall_s += part.wall_s  # summed over workers: wall_fps is the rate of one worker
        candidates += part.samples
    result.unpaired = dict(unpaired)
    if candidates and samples > 0:
        picks = np.unique(np.linspace(0, len(candidates) - 1, min(samples, len(candidates))).round().astype(int))
        result.samples = [candidates[i] for i in picks]
    return result
