"""calculators.apiprices (genai-prices adapter), calculators.gpuprices and the evaluate contract of issue 15.

The updater is tested against a real HTTP server on 127.0.0.1 serving a modified copy of the data;
nothing here touches the network.
"""

from __future__ import annotations

import http.server
import statistics
import threading
from pathlib import Path

import pytest

from calculators import apiprices, catalog, cli_prices, gpuprices
from calculators.cost import evaluate, report_to_dict
from calculators.scenario import loads_toml
from tests.unit.conftest import PriceDataHandler

ROOT = Path(__file__).resolve().parents[2]


def test_pinned_version_and_update_url_match_the_installed_package():
    import genai_prices.update_prices as up

    assert apiprices.DEFAULT_UPDATE_URL == up.DEFAULT_UPDATE_URL
    info = apiprices.data_info()
    assert (info.version, info.origin, info.date) == ("0.2.3", "bundled", "2026-11-10")
    assert info.models > 2000 and info.providers > 40
    assert "genai-prices==0.2.3" in (ROOT / "requirements.txt").read_text()


def test_search_and_quotes():
    keys = [e.key for e in apiprices.search("openai gpt-6-sol")]
    assert "openai:gpt-6-sol" in keys
    q = apiprices.quote("gpt-6-sol", batch=True)
    assert (q.batch, q.base.input_usd_per_mtok, q.base.output_usd_per_mtok) == (True, 1.0, 5.0)
    assert (q.long_context_tokens, q.long.input_usd_per_mtok, q.long.output_usd_per_mtok) == (272000, 2.0, 7.5)
    with pytest.raises(apiprices.PriceDataError, match="'no-such-model' is not in the price data"):
        apiprices.quote("no-such-model")


def test_overlay_is_notes_not_prices_and_every_mapped_row_resolves():
    header = (ROOT / "calculators/data/api_models.csv").read_text().splitlines()[0]
    assert "usd" not in header  # no second copy of the prices
    for ov in catalog.api_overlay().values():
        assert ov.source and ov.as_of
        if ov.in_data:
            q = apiprices.quote(ov.model, ov.provider)
            assert (q.provider_id, q.model_id) == (ov.provider, ov.model)
        else:
            with pytest.raises(apiprices.PriceDataError, match="type its prices"):
                apiprices.lookup(ov.id)
    for mid in ("gemini-2.5-pro", "gemini-2.5-flash"):
        assert catalog.api_overlay()[mid].retires == "2026-12-01"
    for mid in ("gpt-5", "gpt-5-mini", "gpt-5-nano"):
        assert catalog.api_overlay()[mid].retires == "2026-12-11"
    for mid in ("groq-llama-3.3-70b", "groq-llama-3.1-8b"):
        assert catalog.api_overlay()[mid].retires == "2026-08-16"


def _scenario(api: str, traffic_extra: str = "") -> str:
    return f"""
[traffic]
requests_per_day = 1000
input_tokens = 10000
output_tokens = 500
{traffic_extra}
[api]
{api}
[self_host]
gpu = "h100-sxm"
output_tokens_per_s = 2000
"""


def test_evaluate_uses_the_database_model_with_source_and_date():
    r = evaluate(loads_toml(_scenario('model = "claude-sonnet-5-5"')))
    d = report_to_dict(r)["api_rates"]
    assert d["source"] == "genai-prices 0.2.3, bundled data of 2026-11-10" and d["mode"] == "interactive"
    assert (d["input_usd_per_mtok"], d["output_usd_per_mtok"]) == (2.0, 10.0)
    # 1000 req/day * 730/24 * (10000 * 2 + 500 * 10) / 1e6
    assert r.api.usd_per_month == pytest.approx(1000 * 730 / 24 * 0.025)
    assert any("bundled data of 2026-11-10" in x for x in r.reasons)


def test_batch_scenario_uses_the_batch_rate():
    inter = evaluate(loads_toml(_scenario('model = "gpt-6-sol"')))
    batch = evaluate(loads_toml(_scenario('model = "gpt-6-sol"\nbatch = true')))
    assert batch.rates.mode == "batch" and inter.rates.mode == "interactive"
    assert batch.api.usd_per_month == pytest.approx(inter.api.usd_per_month / 2)


def test_retired_model_is_flagged():
    r = evaluate(loads_toml(_scenario('model = "gemini-2.5-pro"')))
    assert r.rates.retired and r.rates.retires == "2026-12-01"
    assert any("was shut down on 2026-12-01" in x for x in r.reasons)
    r2 = evaluate(loads_toml(_scenario('model = "gpt-5-mini"')))
    assert r2.rates.retires == "2026-12-11"
    assert any("gpt-5-mini" in x and "2026-12-11" in x for x in r2.reasons)


def test_typed_price_wins_and_is_labelled():
    r = evaluate(loads_toml(_scenario('model = "gpt-6-sol"\noutput_usd_per_mtok = 3.0')))
    assert r.rates.output_usd_per_mtok == 3.0 and r.rates.source.endswith("(typed: output)")
    typed = evaluate(loads_toml(_scenario("input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0")))
    assert typed.rates.source == "typed"


def test_long_context_tier_from_trace_percentiles():
    extra = "input_tokens_p50 = 5000\ninput_tokens_p90 = 100000\ninput_tokens_p99 = 400000"
    r = evaluate(loads_toml(_scenario('model = "gpt-6-sol"', extra)))
    assert r.rates.long_context_tokens == 272000
    # quantile through (0.9, 100k) and (0.99, 400k): 400k - 272k over 300k of that 9% slice, plus the top 1%
    assert r.rates.long_request_share == pytest.approx(0.09 * 128 / 300 + 0.01, abs=2e-4)
    assert 2.0 < r.rates.input_usd_per_mtok < 4.0 and 10.0 < r.rates.output_usd_per_mtok < 15.0
    plain = evaluate(loads_toml(_scenario('model = "gpt-6-sol"')))  # mean 10k: below the tier
    assert plain.rates.long_request_share == 0 and plain.rates.input_usd_per_mtok == 2.0


def test_cache_writes_are_billed_at_the_write_rate():
    api = 'model = "claude-sonnet-5-5"\ncache_write_fraction = 0.2'
    r = evaluate(loads_toml(_scenario(api, "cached_input_fraction = 0.5")))
    # per request: 10000 * (0.3 * 2 + 0.2 * 2.5 + 0.5 * 0.1) + 500 * 10, per M
    assert r.api.usd_per_request == pytest.approx((10000 * (0.6 + 0.5 + 0.05) + 5000) / 1e6)


def test_update_fetches_reports_changes_stores_and_is_used(data_server, monkeypatch, capsys):
    monkeypatch.setenv(apiprices.URL_ENV, data_server)
    assert cli_prices.main(["prices", "--update", "--search", "anthropic claude-sonnet-5-5", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "changed  anthropic:claude-sonnet-5-5: in $2 / " in out and "-> in $2.2 / " in out
    assert "added    anthropic:claude-sonnet-6: in $3 / out $12" in out
    assert apiprices.data_info().origin == "fetched" and apiprices.data_info().url == data_server
    assert apiprices.quote("claude-sonnet-5-5").base.input_usd_per_mtok == 2.2
    apiprices.reload()  # a new process reads the stored file
    assert apiprices.quote("claude-sonnet-5-5").base.input_usd_per_mtok == 2.2
    assert apiprices.forget_update() and apiprices.data_info().origin == "bundled"


def test_update_offline_keeps_the_pinned_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(apiprices.DIR_ENV, str(tmp_path))
    apiprices.reload()
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli_prices.main(["prices", "--update", "--url", f"http://127.0.0.1:{port}/x", "--limit", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot fetch price data from http://127.0.0.1:") and "still using" in err
    assert apiprices.data_info().origin == "bundled"


def test_update_rejects_a_file_that_is_not_price_data(tmp_path, monkeypatch):
    monkeypatch.setenv(apiprices.DIR_ENV, str(tmp_path))
    handler = type("H", (PriceDataHandler,), {"body": b'{"not": "a list"}'})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(apiprices.PriceDataError, match="did not return genai-prices data"):
            apiprices.update(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "genai-prices-data.json").exists()


def test_gpu_prices_have_sources_and_gpus_csv_low_high_match_the_on_demand_rows():
    for row in gpuprices.all_prices():
        assert row.source and row.as_of and row.gpu in catalog.gpus()
    for g in catalog.gpus().values():
        rows = gpuprices.prices(g.id, "on-demand")
        assert (g.usd_per_gpu_hour_low, g.usd_per_gpu_hour_high) == gpuprices.on_demand_range(g.id)
        assert gpuprices.default_usd_per_hour(g.id) == round(statistics.median(r.usd_per_gpu_hour for r in rows), 4)
    h200 = gpuprices.prices("h200", "on-demand")
    assert max(r.usd_per_gpu_hour for r in h200) == 6.305  # CoreWeave 8x H200 / 8


def test_support_bot_today_golden():
    from calculators.scenario import DEFAULT_SCENARIO

    r = evaluate(DEFAULT_SCENARIO)
    # gpt-6-luna (genai-prices 0.2.3): 750*0.10 + 750*0.01 + 300*0.50 = 232.5 / 1e6 per request
    assert r.api.usd_per_request == pytest.approx(232.5e-6)
    assert r.api.usd_per_month == pytest.approx(20_000 * 730 / 24 * 232.5e-6)  # $141.44
    # H100 SXM on-demand median 5.2225 * 730 + ops 1,500 = $5,312.43
    assert r.self_host.usd_per_month == pytest.approx(5.2225 * 730 + 1500)
    # a fully busy replica serves 86,400 / (300/3,400 s) / 2 (peak) = 489,600 req/day = $3,462/month at the
    # API, less than the replica's $3,812: self-hosting never breaks even against gpt-6-luna
    assert r.breakeven.requests_per_day is None and r.verdict == "api"


def test_a_model_the_data_marks_deprecated_is_flagged():
    api = 'model = "Meta-Llama-3.1-70B-Instruct"\nprovider = "avian"'
    r = evaluate(loads_toml(_scenario(api)))
    assert r.rates.provider == "avian"
    assert any("marks Meta-Llama-3.1-70B-Instruct at Avian deprecated" in x for x in r.reasons)
