"""Pure calculators: cost model, scenarios, catalogs, memory fit and roofline.

Nothing in this package imports streamlit, vLLM or torch; pages call these functions and cache them.
Run headless with ``python -m calculators --help``.
"""

__all__: list[str] = []
