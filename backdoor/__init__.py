"""Measure backdoor data-poisoning attacks on image classifiers.

The library knows nothing of DVC: the scripts under ``stages/`` read params.yaml,
call into it and write outputs atomically.

Importing it pins torch's CPU kernels (``CPU_NUMERICS``), so that a dvc.lock written on one machine
reproduces on another. torch picks kernels by the CPU it runs on (AVX2, AVX-512, AMX: ATen's vectorised ops,
oneDNN's convolutions, MKL's matrix products), and each rounds differently. ATen and oneDNN are pinned to AVX2;
MKL to its COMPATIBLE branch, the one MKL documents as giving the same results on Intel and non-Intel CPUs
(its AVX2 branch applies on Intel only: on an AMD EPYC ``MKL_CBWR=AVX2`` gave the same bytes as ``AUTO``, and
with it a fresh clone trained the focus model to other weights than the Intel machine that wrote the lock).
Results are then bitwise equal at the same number of torch threads (reductions split by thread); the pin costs
about 8 % of CPU training speed on an AVX-512 machine, nothing measurable on an AVX2 one (docs/performance.md).
The GPU path is not affected. A variable already set in the environment wins (``ONEDNN_MAX_CPU_ISA=ALL``
restores oneDNN's native choice); the pin must happen before torch's first CPU operation, so import this
package before computing anything.
"""

import os

CPU_NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}
for _name, _value in CPU_NUMERICS.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
