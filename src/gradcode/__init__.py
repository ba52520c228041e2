"""gradcode: straggler-resilient distributed training with gradient coding.

Subpackages:

* :mod:`gradcode.codes` -- the schemes (pure NumPy): placement, encoding, decoding.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import gradcode` (and the CLI's start) does not import torch.
    if name == "register_dataset":
        from gradcode.datasets import register_dataset

        return register_dataset
    if name == "register_model":
        from gradcode.models import register_model

        return register_model
    raise AttributeError(f"module 'gradcode' has no attribute {name!r}")
