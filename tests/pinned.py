"""The example scenarios with the prices their hand-worked goldens were computed from, typed in.

Before issue 15 the support bot compared against gpt-5-mini ($0.25 / $0.025 / $2.00 per M) and the RAG
assistant against Claude Sonnet 4.6 ($3 / $0.30 / $15), both on H100 SXM at $2.69/GPU-hour (RunPod
Community). The goldens in test_cost*.py and test_curves.py are worked by hand from those numbers, so they
are kept exact here with typed prices, whatever the price data says today; the examples' current prices
(genai-prices, on-demand GPU medians) have their own tests in test_apiprices.py and test_scenario.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from calculators.scenario import DEFAULT_SCENARIO, ApiPricing, Scenario, load_toml

__all__ = ["SUPPORT_BOT", "RAG_PINNED", "with_prices"]

ROOT = Path(__file__).resolve().parents[1]


def with_prices(s: Scenario, api: tuple[float, float, float], gpu_usd_per_hour: float,
                model: str | None) -> Scenario:
    return dataclasses.replace(
        s, api=ApiPricing(*api, model=model),
        self_host=dataclasses.replace(s.self_host, gpu_usd_per_hour=gpu_usd_per_hour, gpu_price_tier="typed"))


SUPPORT_BOT = with_prices(DEFAULT_SCENARIO, (0.25, 0.025, 2.0), 2.69, None)
RAG_PINNED = with_prices(load_toml(ROOT / "scenarios/rag-assistant-70b.toml"), (3.0, 0.3, 15.0), 2.69,
                         "claude-sonnet-4.6")
