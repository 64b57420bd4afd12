"""The DVC-aware layer: which stages are stale, in what order, and how they run beyond one process."""
