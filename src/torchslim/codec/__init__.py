"""Deep Compression storage (Han et al. 2016, s. 4): a ``.tsc`` file holding a model's
architecture spec and every tensor in its smallest bit-exact layout (dense, sparse with
relative indices, codebook-indexed), with each symbol stream coded by fixed-width packing,
canonical Huffman or rANS, whichever is smallest.

>>> from torchslim.codec import write_model, decode_model
>>> path, stats, overhead = write_model(model, "model.tsc")
>>> same = decode_model("model.tsc")          # bit-identical weights, ready to run
"""

from torchslim.codec.container import FORMAT_VERSION, MAGIC, decode_model, decode_state_dict, encode_bytes, write_model
from torchslim.codec.encode import EncodeConfig, encode_
from torchslim.codec.table import summarize
from torchslim.codec.tensor import TensorStats, decode_tensor, encode_tensor

__all__ = [
    "EncodeConfig",
    "FORMAT_VERSION",
    "MAGIC",
    "TensorStats",
    "decode_model",
    "decode_state_dict",
    "decode_tensor",
    "encode_",
    "encode_bytes",
    "encode_tensor",
    "summarize",
    "write_model",
]
