"""Measure backdoor data-poisoning attacks on image classifiers.

The library knows nothing of DVC: the scripts under ``stages/`` read params.yaml,
call into it and write outputs atomically.
"""

__version__ = "0.1.0"
