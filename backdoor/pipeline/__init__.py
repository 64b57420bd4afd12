"""The DVC layer: how stages are laid out and what they depend on. The rest of ``backdoor`` knows nothing of DVC."""
