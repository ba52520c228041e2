"""Compatibility name for :mod:`gradcode.datasets` (same objects, same names).

>>> from gradcode.data import load_dataset
>>> from gradcode.datasets import load_dataset as same
>>> load_dataset is same
True
"""

from gradcode.datasets import *  # noqa: F403
from gradcode.datasets import __all__  # noqa: F401
