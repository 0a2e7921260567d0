"""Low-rank factorization and compression-aware training.

Steps: ``lowrank.svd`` (Linear -> two Linears, Conv2d -> kxk + 1x1), ``lowrank.tucker``
(Tucker-2: 1x1 -> kxk core -> 1x1), ``lowrank.cp`` (Lebedev et al. 2015: 1x1 -> depthwise
kx1 -> depthwise 1xk -> 1x1), ``lowrank.spatial`` (Jaderberg et al. 2014: kx1 -> 1xk) and
``lowrank.regularize`` (nuclear-norm training, Alvarez & Salzmann 2017). Every replacement is
an ``nn.Sequential`` of standard layers. TensorLy (Tucker-2) and SciPy (VBMF) load on first use.

The Python API is the registered step functions, ``technique_(model, config, ctx) -> model``:
``svd_(model, SVDConfig(rank_method="macs", target_macs=2.0), ctx)``, the step's details in
``ctx.results[-1]``. Layout: ``config`` (shared fields), ``layers`` (shapes, MACs, the
``Method`` interface), ``ranks`` (rank selection), ``factorize`` (the driver), one file per
decomposition, ``regularize`` (compression-aware training).
"""

from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.cp import CPConfig, cp_, cp_conv
from torchslim.lowrank.regularize import RegularizeConfig, regularize_
from torchslim.lowrank.spatial import SpatialConfig, spatial_, spatial_conv
from torchslim.lowrank.svd import SVDConfig, svd_, svd_conv, svd_linear
from torchslim.lowrank.tucker import TuckerConfig, tucker2_conv, tucker_

__all__ = [
    "CPConfig",
    "FactorizeConfig",
    "RegularizeConfig",
    "SVDConfig",
    "SpatialConfig",
    "TuckerConfig",
    "cp_",
    "cp_conv",
    "regularize_",
    "spatial_",
    "spatial_conv",
    "svd_",
    "svd_conv",
    "svd_linear",
    "tucker2_conv",
    "tucker_",
]
