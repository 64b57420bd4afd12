"""Measure backdoor data-poisoning attacks on image classifiers.

The library knows nothing of DVC: the scripts under ``stages/`` read params.yaml,
call into it and write outputs atomically.

Importing it pins torch's CPU kernels to one instruction set (``CPU_NUMERICS``). torch picks its kernels by
the CPU it runs on (AVX2, AVX-512, AMX: ATen's vectorised ops, oneDNN's convolutions, MKL's matrix
products), and each rounds differently: the same training on two machines gave different weights, so a
dvc.lock written on one machine did not reproduce on another. With AVX2 everywhere, results are bitwise
equal on any x86-64 CPU that has it, at the same number of torch threads (reductions split by thread);
it costs about 8 % of CPU training speed on an AVX-512 machine (docs/performance.md). The GPU path is not
affected. A variable already set in the environment wins (``ONEDNN_MAX_CPU_ISA=ALL`` restores oneDNN's
native choice); the pin must happen before torch's first CPU operation, so import this package before
computing anything.
"""

import os

CPU_NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
for _name, _value in CPU_NUMERICS.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
