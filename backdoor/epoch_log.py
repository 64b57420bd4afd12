"""Per-epoch metrics to DVCLive (plots/metrics/*.tsv under the given folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def dvclive_logger(folder: str | Path) -> tuple[Callable[[int, dict[str, float]], None], Callable[[], None]]:
    """Return (log(epoch, values), close()). ``dvcyaml=None``: never rewrite the hand-written dvc.yaml."""
    from dvclive import Live

    live = Live(dir=str(folder), dvcyaml=None, save_dvc_exp=False, report=None)

    def log(epoch: int, values: dict[str, float]) -> None:
        live.step = epoch
        for name, value in values.items():
            live.log_metric(name, value)
        live.next_step()

    return log, live.end
