"""Bundled offline datasets and a user's own data, as standardised, seeded train/val/test splits.

>>> from torchslim.data import load_data
>>> splits = load_data("mnist5k", image_size=32)   # or "digits", "npz:x.npz", "folder:imgs/"
>>> x, y = splits.train.tensors                     # (3500, 1, 32, 32) float32, (3500,) int64

Folder splits stream from disk (map-style Datasets); a user's own splits are any torch Datasets
or DataLoaders. Read any of them with :mod:`torchslim.data.access`:

>>> from torchslim.data import batches, first_inputs
>>> x = first_inputs(splits.test, 8)                # (8, 1, 32, 32), whatever the split is
"""

from torchslim.data.access import as_splits, batches, first_inputs, first_samples, num_samples
from torchslim.data.bundled import list_datasets, load_dataset
from torchslim.data.folder import from_image_folder
from torchslim.data.npz import from_npz
from torchslim.data.spec import load_data
from torchslim.data.splits import DataSplits

__all__ = [
    "DataSplits",
    "as_splits",
    "batches",
    "first_inputs",
    "first_samples",
    "num_samples",
    "from_image_folder",
    "from_npz",
    "list_datasets",
    "load_data",
    "load_dataset",
]
