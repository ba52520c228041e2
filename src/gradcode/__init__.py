"""gradcode: straggler-resilient distributed training with gradient coding.

Subpackages:

* :mod:`gradcode.codes` -- the schemes (pure NumPy): placement, encoding, decoding.
"""

__version__ = "0.1.0"
