"""Probes: GPU inspection, vLLM server lifecycle, load generation, metrics and the results store.

Nothing here imports streamlit, vLLM or torch: vLLM runs in its own interpreter (``--vllm-python``).
Run headless with ``python -m probes --help``.
"""

__all__: list[str] = []
