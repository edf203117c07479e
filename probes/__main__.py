"""``python -m probes``: the headless probe CLI (see :mod:`probes.cli`); ``list`` alone is served by
:mod:`probes.results.listing` without importing the probe machinery (it answers in a fraction of the time)."""

import sys

__all__: list[str] = []

if __name__ == "__main__":
    if sys.argv[1:2] == ["list"]:
        from probes.results.listing import main as list_main

        sys.exit(list_main(sys.argv[2:]))
    from probes.cli import main

    sys.exit(main())
