"""Which load points to run and in what order: concurrency sweeps (and searches)."""
