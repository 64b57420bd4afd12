"""A stage process ends with the run that started it, and cleans up when it ends early.

- SIGTERM, SIGINT and SIGHUP raise ``SystemExit(128 + signal)`` in the main thread, so every ``finally``
  runs: the atomic writers remove their temporaries (``backdoor.files``), nothing half-written stays.
- Run by DVC (which sets ``DVC_STAGE`` for a stage's command), a watcher thread checks every half second
  that the ``dvc`` process that started the stage, and any shell between them, is still alive (a zombie is
  not); when one is gone (``dvc`` killed by SIGTERM or SIGKILL does not stop its child), the stage sends itself
  SIGTERM. Without this, the next ``dvc repro`` would train a second copy beside the orphan.
- SIGKILL cannot be caught: its temporaries are removed by the next run (``io.remove_stale_temporaries``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}
POLL_SECONDS = 0.5


def _exit_on(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def launcher_chain(process: psutil.Process | None = None) -> list[psutil.Process]:
    """The parent, and further up while the processes are shells: the shells DVC ran the command in and the
    process that runs DVC itself."""
    chain = []
    parent = (process or psutil.Process()).parent()
    while parent is not None:
        chain.append(parent)
        if parent.name() not in SHELLS:
            break
        parent = parent.parent()
    return chain


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie: a killed ``dvc`` stays one until its own launcher reaps it, which a launcher
    reading DVC's output (a Python wrapper, a CI runner) does only once the pipe closes, and the stage, which
    inherited that pipe, holds it open. is_running also compares start times: a reused pid is not alive."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _watch(chain: list[psutil.Process], stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        if not all(alive(p) for p in chain):
            os.kill(os.getpid(), signal.SIGTERM)
            return


@contextmanager
def stage_process(watch_launcher: bool | None = None) -> Iterator[None]:
    """Inside the block, signals unwind the stage and (under DVC, by default) the stage dies with its launcher."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _exit_on) for sig in SIGNALS}
    stop = threading.Event()
    if watch_launcher if watch_launcher is not None else "DVC_STAGE" in os.environ:
        threading.Thread(target=_watch, args=(launcher_chain(), stop), daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
