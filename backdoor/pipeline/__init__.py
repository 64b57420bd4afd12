"""The DVC layer: how stages are laid out, what they depend on, which are stale and in what order, and how
they run beyond one process. The rest of ``backdoor`` knows nothing of DVC."""
