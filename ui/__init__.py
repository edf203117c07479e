"""Streamlit-only helpers shared by the pages: scenario state (``ui.state``) and widgets (``ui.widgets``).

Only this package and the pages import streamlit; ``calculators/`` and ``probes/`` never do.
"""

__all__: list[str] = []
