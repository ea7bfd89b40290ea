"""`rtformer convert` / `load_pdparams`: safe unpickling, readable errors, self-describing checkpoints."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
from helpers import rtformer, rtformer_error

try:  # dev-only (requirements-dev.txt): absent on robots, skipped there
    import torch
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)

from rtformer_ros.model import CheckpointError, build_rtformer, load_checkpoint
from rtformer_ros.model.convert import ConvertError, convert_state_dict, infer_options, load_pdparams


class _CreatesFile:
    """A pickle payload that would create a file if anything ever called it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (str(self.path),))


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    target = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pdparams'
    evil.write_bytes(pickle.dumps({'conv1.0.weight': np.zeros(3, np.float32), 'x': _CreatesFile(target)}))
    with pytest.raises(ConvertError, match='refusing to load os.makedirs'):
        load_pdparams(evil)
    err = rtformer_error('convert', evil, '-o', tmp_path / 'out.pt', '--variant', 'slim', '--num-classes', '19')
    assert 'evil.pdparams' in err and 'refusing' in err
    assert not target.exists() and not (tmp_path / 'out.pt').exists()


def test_convert_cli_writes_a_checkpoint_that_reproduces_paddleseg(paddle_fixtures, tmp_path):
    out = tmp_path / 'slim_c19.pt'
    result = rtformer('convert', paddle_fixtures / 'rtformer_slim_c19.pdparams', '-o', out,
                      '--variant', 'slim', '--num-classes', '19', '--dataset', 'cityscapes')
    assert result.rc == 0 and 'cityscapes (19 classes)' in result.out, result
    ckpt = load_checkpoint(out)
    assert ckpt.classes.names[0] == 'road' and ckpt.model.cfg.use_injection == (True, True)
    x = torch.from_numpy(np.load(paddle_fixtures / 'rtformer_slim_c19_input.npy'))
    reference = np.load(paddle_fixtures / 'rtformer_slim_c19_logits.npy')
    with torch.no_grad():
        logits = ckpt.model(x).numpy()
    assert np.abs(logits - reference).max() <= 1e-4 * np.abs(reference).max()


@pytest.mark.parametrize(('args', 'match'), [
    (['--variant', 'base', '--num-classes', '19'], 'RTFormer-slim .* not base'),
    (['--variant', 'slim', '--num-classes', '11'], 'weights have 19 classes, not --num-classes 11'),
])
def test_variant_or_class_count_mismatch_says_which(paddle_fixtures, tmp_path, args, match):
    src = paddle_fixtures / 'rtformer_slim_c19.pdparams'
    assert re.search(match, rtformer_error('convert', src, '-o', tmp_path / 'x.pt', *args))
    assert not (tmp_path / 'x.pt').exists()


def test_missing_unexpected_and_misshaped_keys_are_listed_in_one_error():
    model = build_rtformer('slim', num_classes=19, use_injection=(True, False))
    arrays = {k.replace('running_mean', '_mean').replace('running_var', '_variance'): v.numpy()
              for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    del arrays['spp.scale0.2.weight']
    arrays['extra.weight'] = np.zeros(1, np.float32)
    arrays['seghead.conv2.bias'] = np.zeros(7, np.float32)
    with pytest.raises(ConvertError) as err:
        convert_state_dict(arrays, model)
    text = str(err.value)
    assert 'missing (1): spp.scale0.2.weight' in text
    assert 'unexpected (1): extra.weight' in text
    assert 'mis-shaped (1): seghead.conv2.bias [7] != [19]' in text


def test_infer_options_reads_what_the_weights_show(paddle_fixtures):
    found = infer_options(load_pdparams(paddle_fixtures / 'rtformer_slim_c19.pdparams'))
    assert found == {'variant': 'slim', 'base_channels': 32, 'num_classes': 19, 'use_injection': (True, True),
                     'head_channels': 64}


@pytest.mark.parametrize('content', [b'', b'not a pickle at all', b'\x80\x04\x95'])
def test_unreadable_pdparams_fails_with_the_file_named(tmp_path, content):
    bad = tmp_path / 'bad.pdparams'
    bad.write_bytes(content)
    with pytest.raises(ConvertError, match='bad.pdparams'):
        load_pdparams(bad)


def test_missing_pdparams_is_file_not_found(tmp_path):
    line = rtformer_error('convert', tmp_path / 'nope.pdparams', '-o', tmp_path / 'x.pt', '--variant', 'slim',
                          '--num-classes', '19')
    assert 'nope.pdparams: no such file' in line


def test_truncated_or_foreign_checkpoint_is_a_checkpoint_error(tmp_path, paddle_fixtures):
    good = tmp_path / 'good.pt'
    assert rtformer('convert', paddle_fixtures / 'rtformer_slim_c19.pdparams', '-o', good, '--variant', 'slim',
                    '--num-classes', '19').rc == 0
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated.pt: not a readable checkpoint'):
        load_checkpoint(truncated)
    foreign = tmp_path / 'foreign.pt'
    torch.save({'model': {}}, foreign)
    with pytest.raises(CheckpointError, match='foreign.pt: not an rtformer_ros checkpoint'):
        load_checkpoint(foreign)
