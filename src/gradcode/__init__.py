"""gradcode: straggler-resilient distributed training with gradient coding.

Subpackages:

* :mod:`gradcode.codes` -- the schemes (pure NumPy): placement, encoding, decoding.
* :mod:`gradcode.runtime` -- the master loop and its backends (local, Ray).

Entry point for your own model and data: :func:`gradcode.fit` (see
:mod:`gradcode.fitting`); :func:`gradcode.accuracy` is a ready-made metric.
Both are imported lazily, so ``import gradcode`` stays light.
"""

__version__ = "0.1.0"

__all__ = ["accuracy", "advise", "fit", "register_dataset", "register_model"]


def __getattr__(name: str):
    # Lazy, so `import gradcode` (and the CLI's start) does not import torch.
    if name == "register_dataset":
        from gradcode.datasets import register_dataset as value
    elif name == "register_model":
        from gradcode.models import register_model as value
    elif name == "fit":
        from gradcode.fitting import fit as value
    elif name == "advise":
        from gradcode.advising import advise as value
    elif name == "accuracy":
        from gradcode.task import accuracy as value
    else:
        raise AttributeError(f"module 'gradcode' has no attribute {name!r}")
    globals()[name] = value
    return value
