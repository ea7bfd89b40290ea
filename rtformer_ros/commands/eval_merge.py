"""``rtformer eval-merge``: the part files of ``rtformer eval --bags --shard I/N`` -> the report of one run."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'eval-merge'
HELP = 'merge the part files of rtformer eval --bags --shard I/N into one report'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('parts', nargs='+', type=Path, metavar='PART',
                        help='part files of rtformer eval --shard, or folders holding them (part-*.json)')
    parser.add_argument('--out', type=Path, default=Path('rtformer_eval') / 'merged',
                        help='report folder (default rtformer_eval/merged)')


def run(args: argparse.Namespace) -> int:
    """Check the shards belong together and cover the run; write the usual report."""
    from rtformer_ros.bags.evaluate import EvalOptions
    from rtformer_ros.bags.fleet import merge_parts, read_shards
    from rtformer_ros.bags.report import write_report
    from rtformer_ros.commands.eval import print_summary

    shards = read_shards(args.parts)
    setup = shards[0].setup
    model = next((part.model['path'] for shard in shards for part in shard.parts if part.model), None)
    opts = EvalOptions(bag=Path(' '.join(setup['bags'])), label_topic=setup['label_topic'],
                       image_topic=setup['image_topic'], pred_topic=setup['pred_topic'],
                       model=None if model is None else Path(model), dataset=setup['dataset'],
                       ignore_index=setup['ignore_index'], resize=setup['resize'], samples=setup['samples'])
    parts = [part for shard in shards for part in shard.parts]
    report = write_report(merge_parts(opts, parts, setup['samples']), args.out)
    failed = sum(1 for part in parts if part.error)
    print_summary(f'{len(shards)} shards, {len(parts)} bags ({failed} not scored)', report, args.out)
    return 0
