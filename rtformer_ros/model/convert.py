"""PaddleSeg ``.pdparams`` -> our checkpoint, without Paddle and without running code from the file.

A ``.pdparams`` is a pickle of {key: numpy.ndarray} plus a ``StructuredToParameterName@@`` bookkeeping entry.
Pickles can call anything; ours may only rebuild numpy arrays. Key mapping is two suffix renames (PaddleSeg
names BatchNorm statistics ``_mean``/``_variance``); shapes are identical (no Linear layers, OIHW everywhere).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from rtformer_ros.errors import RtformerError
from rtformer_ros.model.rtformer import RTFormer

__all__ = ['ConvertError', 'convert_state_dict', 'infer_options', 'load_pdparams']

_BOOKKEEPING = 'StructuredToParameterName@@'

# The only globals a numpy-array pickle needs (numpy 1.x and 2.x module paths).
_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('collections', 'OrderedDict'),
}


class ConvertError(RtformerError, ValueError):
    """A ``.pdparams`` file is unsafe, unreadable, or does not fit the requested model."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            msg = f'refusing to load {module}.{name}: a .pdparams file may only contain numpy arrays'
            raise pickle.UnpicklingError(msg)
        return super().find_class(module, name)


def load_pdparams(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PaddleSeg state dict with a restricted unpickler (arrays only, nothing executes).

    Raises:
        ConvertError: no such file, the pickle asks for any other callable, is truncated, or holds no arrays.
    """
    path = Path(path)
    if path.is_dir() and (path / 'model.pdparams').is_file():  # PaddleSeg zips unpack to <name>/model.pdparams
        path = path / 'model.pdparams'
    if not path.is_file():
        msg = f'{path}: no such file'
        raise ConvertError(msg)
    try:
        data = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding='latin1').load()
    except pickle.UnpicklingError as err:
        msg = f'{path}: {err}'
        raise ConvertError(msg) from None
    except Exception as err:  # truncated or not a pickle at all
        msg = f'{path}: not a readable .pdparams pickle ({type(err).__name__}: {err})'
        raise ConvertError(msg) from None
    if not isinstance(data, dict):
        msg = f'{path}: expected a dict of arrays, got {type(data).__name__}'
        raise ConvertError(msg)
    arrays = {k: v for k, v in data.items() if k != _BOOKKEEPING}
    odd = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if odd or not arrays:
        msg = f'{path}: not a state dict of arrays (entries {odd[:5]} are not arrays)' if odd else f'{path}: empty'
        raise ConvertError(msg)
    return arrays


def paddle_to_torch_key(key: str) -> str:
    """PaddleSeg key -> ours: only the BatchNorm statistics suffixes differ."""
    if key.endswith('._mean'):
        return key[: -len('._mean')] + '.running_mean'
    if key.endswith('._variance'):
        return key[: -len('._variance')] + '.running_var'
    return key


def infer_options(arrays: dict[str, np.ndarray]) -> dict:
    """Architecture facts visible in the weights (``cross_size`` is not: it must come from the config).

    Returns ``variant``, ``num_classes``, ``head_channels`` and ``use_injection``.
    """
    try:
        base = arrays['conv1.0.weight'].shape[0]
        options = {
            'variant': {32: 'slim', 64: 'base'}.get(base, 'custom'),
            'base_channels': int(base),
            'num_classes': int(arrays['seghead.conv2.bias'].shape[0]),
            'use_injection': ('layer4.down.2.weight' in arrays, 'layer5.down.2.weight' in arrays),
        }
    except KeyError as err:
        msg = f'not an RTFormer state dict: key {err.args[0]} missing'
        raise ConvertError(msg) from None
    if 'seghead_extra.conv1.weight' in arrays:
        options['head_channels'] = int(arrays['seghead_extra.conv1.weight'].shape[0])
    return options


def convert_state_dict(arrays: dict[str, np.ndarray], model: RTFormer) -> dict[str, torch.Tensor]:
    """Map PaddleSeg arrays onto ``model``'s state dict, checking every key and shape.

    ``num_batches_tracked`` (PyTorch only) is filled with zeros. A checkpoint without the training-only aux head
    (``seghead_extra``) converts into a model built without it.

    Raises:
        ConvertError: one message listing missing, unexpected and mis-shaped keys.
    """
    target = model.state_dict()
    renamed = {paddle_to_torch_key(k): v for k, v in arrays.items()}
    missing = [k for k in target if k not in renamed and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in renamed if k not in target]
    misshaped = [f'{k} {list(renamed[k].shape)} != {list(target[k].shape)}'
                 for k in target if k in renamed and tuple(renamed[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or misshaped:
        parts = [f'{name} ({len(keys)}): {", ".join(keys[:8])}{" ..." if len(keys) > 8 else ""}'
                 for name, keys in (('missing', missing), ('unexpected', unexpected), ('mis-shaped', misshaped))
                 if keys]
        raise ConvertError('weights do not fit the model: ' + '; '.join(parts))
    out = {}
    for key, ref in target.items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.zeros((), dtype=torch.long)
        else:
            out[key] = torch.from_numpy(np.ascontiguousarray(renamed[key])).to(ref.dtype)
    return out
