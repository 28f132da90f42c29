"""toysup's engine: sweep specs, vectorised training of toy models, metrics and the run store.

Nothing here imports a terminal or UI library; front ends are clients of this package
(tests/test_contracts.py checks it).
"""

import os

# MKL's batched GEMM for small matrices rounds differently depending on a matrix's
# position in the batch, so an instance's result would depend on its chunk
# neighbours. Strict conditional numerical reproducibility removes that, at no
# measurable cost here (see tests/test_train.py). Set before torch first calls MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
