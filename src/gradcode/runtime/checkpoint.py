"""Checkpoints without pickle, atomic writes and strict JSON.

A checkpoint is one file written with ``torch.save`` holding exactly::

    {"format": "gradcode-checkpoint", "version": 1,
     "meta": "<JSON text>", "tensors": [tensor, tensor, ...]}

and read back with ``torch.load(weights_only=True)`` (PyTorch's restricted
unpickler: tensors and plain containers only, no code).  Everything that is
not a tensor -- round, clock, history, scheme states, optimizer settings --
is JSON in ``meta``, where a tensor appears as ``{"__tensor__": i}``.  Values
JSON cannot hold are tagged: tuples, sets, frozensets, dicts with non-string
keys, numpy arrays (stored as tensors), numpy ``Generator`` states (their
bit-generator state, JSON), non-finite floats, and gradcode's own frozen
dataclasses (rebuilt only when the class lives in the ``gradcode`` package).
A file that is not such a checkpoint is a one-line :class:`ValueError`.

Every file is written atomically: to a temporary file in the same folder,
then renamed over the target, so a crash leaves the old file or the new one.

Strict JSON (:func:`strict`): ``NaN`` and ``Infinity`` become ``null`` and
the record lists the affected keys under ``"nonfinite"``, so ``jq`` and strict
parsers read every line.

>>> strict({"loss": float("nan"), "acc": 0.5})
{'loss': None, 'acc': 0.5, 'nonfinite': ['loss']}
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "gradcode-checkpoint"
VERSION = 1


# ------------------------------------------------------------------ atomic writes


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------ strict JSON


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None, True
    if isinstance(v, np.floating) and not np.isfinite(v):
        return None, True
    return v, False


def strict(rec: dict) -> dict:
    """``rec`` with non-finite top-level floats as ``None`` (keys listed in ``"nonfinite"``);
    nested lists/dicts are cleaned too."""
    out, bad = {}, []
    for k, v in rec.items():
        v2, flagged = _deep_clean(v)
        out[k] = v2
        if flagged:
            bad.append(k)
    if bad:
        out["nonfinite"] = sorted(set(bad) | set(rec.get("nonfinite", [])))
    return out


def _deep_clean(v) -> tuple[Any, bool]:
    if isinstance(v, dict):
        items = [(k, _deep_clean(x)) for k, x in v.items()]
        return {k: x for k, (x, _) in items}, any(f for _, (_, f) in items)
    if isinstance(v, (list, tuple)):
        items = [_deep_clean(x) for x in v]
        return [x for x, _ in items], any(f for _, f in items)
    return _clean(v)


def dumps_strict(obj, **kw) -> str:
    """``json.dumps`` that refuses NaN/Infinity (clean with :func:`strict` first)."""
    return json.dumps(obj, allow_nan=False, default=_json_default, **kw)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(type(o).__name__)


# ------------------------------------------------------------------ encoding


def _encode(obj, tensors: list) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.untyped_storage().nbytes() > t.numel() * t.element_size():
            t = t.clone()  # a view into a bigger block: save only what it shows
        tensors.append(t)
        return {"__tensor__": len(tensors) - 1}
    if isinstance(obj, np.ndarray):
        tensors.append(torch.from_numpy(np.ascontiguousarray(obj)).clone())
        return {"__ndarray__": len(tensors) - 1}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if isinstance(obj, np.random.Generator):
        return {"__generator__": obj.bit_generator.state}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, tensors) for x in obj]
    if isinstance(obj, (set, frozenset)):
        tag = "__frozenset__" if isinstance(obj, frozenset) else "__set__"
        return {tag: [_encode(x, tensors) for x in sorted(obj, key=repr)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        fields = {f.name: _encode(getattr(obj, f.name), tensors) for f in dataclasses.fields(obj)}
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _decode(obj, tensors: list) -> Any:
    if isinstance(obj, list):
        return [_decode(x, tensors) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__generator__" in obj:
        state = obj["__generator__"]
        bitgen = getattr(np.random, state["bit_generator"])()
        bitgen.state = state
        return np.random.Generator(bitgen)
    if "__tuple__" in obj:
        return tuple(_decode(x, tensors) for x in obj["__tuple__"])
    if "__frozenset__" in obj:
        return frozenset(_decode(x, tensors) for x in obj["__frozenset__"])
    if "__set__" in obj:
        return {_decode(x, tensors) for x in obj["__set__"]}
    if "__dict__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    if "__dataclass__" in obj:
        return _dataclass(obj["__dataclass__"], _decode(obj["fields"], tensors))
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _dataclass(path: str, fields: dict):
    module, _, name = path.partition(":")
    if module != "gradcode" and not module.startswith("gradcode."):
        raise ValueError(f"checkpoint names a class outside gradcode: {path}")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"checkpoint names {path}, which is not a gradcode dataclass")
    obj = object.__new__(cls)  # frozen dataclasses: set fields without __init__ checks
    for k, v in fields.items():
        object.__setattr__(obj, k, v)
    return obj


# ------------------------------------------------------------------ files


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically write ``state`` (tensors + JSON-encodable values) to ``path``."""
    tensors: list = []
    meta = json.dumps(_encode(state, tensors), allow_nan=False)
    atomic_torch_save(
        {"format": FORMAT, "version": VERSION, "meta": meta, "tensors": tensors}, path
    )


def load_checkpoint(path: Path, map_location=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (no code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # foreign pickles make torch warn before failing
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # foreign pickle, torn file, ...
        why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a gradcode checkpoint ({why})") from None
    if not (isinstance(raw, dict) and raw.get("format") == FORMAT):
        raise ValueError(f"{path} is not a gradcode checkpoint")
    if raw.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {raw.get('version')!r}")
    try:
        return _decode(json.loads(raw["meta"]), list(raw["tensors"]))
    except (KeyError, IndexError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is a damaged gradcode checkpoint ({exc})") from None
