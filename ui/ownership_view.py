"""Break-even page: buying GPU servers instead of renting (the "owned (buy)" price tier).

One hook for the page (``owned_section``): when the GPU price tier box says "owned", an expander holds the
buy inputs (keys ``be_own_``; defaults sourced and labelled, ``calculators.ownership.DEFAULTS``), applies
them to the scenario through ``replace_field`` (a rejected value is reported naming its field and the last
good value stays), and shows the owned server's monthly breakdown (the same ``calculators.ownership``
numbers as ``python -m calculators evaluate``'s ``ownership`` block). GPU power is TDP x a load factor
unless the user types watts or picks a measured point of a bundled probe run (NVML power), and it says so.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from calculators import catalog, ownership
from calculators.scenario import OWNED_TIER, Scenario, apply_gpu_tier, buy_input, for_new_gpu, replace_field
from calculators.validation import relabel

__all__ = ["owned_section", "breakdown_frame", "LABELS", "POWER_TDP", "POWER_TYPED", "POWER_MEASURED"]

_TIER_KEY = "be_gpu_tier"
_SYNC_KEY = "be_own_synced"
_RERUN_KEY = "be_own_rerun_for"
POWER_TDP, POWER_TYPED, POWER_MEASURED = "TDP × load factor", "typed watts", "measured run"
_D = ownership.DEFAULTS

# widget key, scenario field, label, min, max, step, format, help
_NUMBERS = (
    ("be_own_server_usd", "own_server_usd", "Server price $ (purchase)", 0.0, 1e9, 10_000.0, "%.0f", None),
    ("be_own_gpus_per_server", "own_gpus_per_server", "GPUs per server", 1.0, 64.0, 1.0, "%.0f", None),
    ("be_own_months", "own_months", "Amortization months", 1.0, 600.0, 6.0, "%.0f", _D["amortization_months"][1]),
    ("be_own_residual", "own_residual", "Residual value (share of price)", 0.0, 1.0, 0.05, "%.2f",
     _D["residual_fraction"][1]),
    ("be_own_hosting_usd", "own_hosting_usd", "Hosting/colocation $ per server-month", 0.0, 1e8, 100.0, "%.0f",
     _D["hosting_usd_per_month"][1]),
    ("be_own_overhead_w", "own_overhead_w", "Rest of server W (CPUs, fans, NICs)", 0.0, 1e6, 100.0, "%.0f", None),
    ("be_own_usd_per_kwh", "own_usd_per_kwh", "Electricity $/kWh", 0.0, 100.0, 0.01, "%.4f", _D["usd_per_kwh"][1]),
    ("be_own_pue", "own_pue", "PUE (facility / IT power)", 1.0, 10.0, 0.05, "%.2f", _D["pue"][1]),
    ("be_own_people_usd", "own_people_usd", "People $ per server-month", 0.0, 1e8, 100.0, "%.0f",
     _D["people_usd_per_month"][1]),
    ("be_own_load_factor", "own_load_factor", "Load factor (share of TDP)", 0.0, 1.5, 0.05, "%.2f",
     _D["load_factor"][1]),
)

LABELS: dict[str, str] = {
    **{f"self_host.{field}": label for _key, field, label, *_rest in _NUMBERS},
    "self_host.own_power_w": "GPU power W (mean, per GPU)",
    "self_host.own_power_kind": "Where the GPU power comes from",
}
"""Dotted own_* field -> its widget label (``ui.inputs.LABELS`` includes them, for error messages)."""


def _options_of(run: dict, key: str, label: str) -> dict[str, tuple[float, str]]:
    """Option label -> (W per GPU, own_power_kind text) for each point of ``run`` with NVML power."""
    out: dict[str, tuple[float, str]] = {}
    for p in ownership.power_points(run):
        jpt = "" if p.j_per_output_token is None else f", {p.j_per_output_token:.3g} J/output token"
        text = (f"{label}, concurrency {p.concurrency}: {p.w_per_gpu:,.0f} W/GPU at "
                f"{p.output_tokens_per_s:,.0f} output tok/s{jpt}")
        kind = f"measured: {key} at concurrency {p.concurrency}, {p.w_per_gpu:,.0f} W/GPU ({p.energy_source})"
        out[text] = (round(p.w_per_gpu, 3), kind[:200])
    return out


@st.cache_data(ttl=600, max_entries=1, show_spinner=False)
def _reference_options() -> dict[str, tuple[float, str]]:
    """The bundled reference runs' points with NVML power."""
    from probes.results import reference  # noqa: PLC0415 - json/re only

    out: dict[str, tuple[float, str]] = {}
    for ref in reference.discover():
        try:
            run = reference.load_run(ref.path)
        except ValueError:
            continue
        out |= _options_of(run, ref.key, f"{ref.key}: {reference.reference_label(run).removeprefix('reference: ')}")
    return out


@st.cache_data(ttl=60, max_entries=1, show_spinner=False)
def _stored_options() -> tuple[dict[str, tuple[float, str]], str]:
    """The newest 50 runs of the results store (``APP__PROBE__DB``) with NVML power, and a note when the store
    cannot be read (the bundled runs are still offered)."""
    from probes.errors import StoreError  # noqa: PLC0415
    from probes.results.store import open_store  # noqa: PLC0415
    from probes.settings import load_settings  # noqa: PLC0415

    try:
        settings = load_settings()
        store = open_store(settings.db_path, hostname=settings.hostname)
        ids = [r["id"] for r in store.list_runs(limit=50)]
        runs = store.get_runs_bare(ids)
    except (ValueError, OSError, StoreError) as exc:
        return {}, f"The results store cannot be read ({exc}); only the bundled runs are offered."
    out: dict[str, tuple[float, str]] = {}
    for rid in ids:
        run = runs.get(rid)
        if run is not None:
            gpu = (run.get("gpu") or {}).get("name") or "GPU?"
            out |= _options_of(run, f"run {rid}", f"run {rid}: {run.get('model') or 'model?'} on {gpu}")
    return out, ""


def _measured_options() -> dict[str, tuple[float, str]]:
    """Option label -> (W per GPU, own_power_kind text): stored runs first, then the bundled reference runs."""
    stored, note = _stored_options()
    if note:
        st.caption(note)
    return stored | _reference_options()


def _defaults(s: Scenario) -> dict[str, float]:
    """What each number box shows for ``s``: its own_* value, or the catalog default the math uses."""
    h = s.self_host
    row = ownership.server_price(h.gpu)
    values = {field: getattr(h, field) for _k, field, *_rest in _NUMBERS}
    if values["own_server_usd"] is None and row is not None:
        values["own_server_usd"] = row.server_usd
    if values["own_gpus_per_server"] is None:
        values["own_gpus_per_server"] = float(row.gpus_per_server if row else 8)
    if values["own_overhead_w"] is None:
        values["own_overhead_w"] = row.overhead_w if row else 2000.0
    return values


def _mark(s: Scenario) -> tuple:
    """What the buy widgets were last seeded from or applied to (the GPU first)."""
    h = s.self_host
    return (h.gpu, *(getattr(h, f) for f in ("own_server_usd", "own_gpus_per_server", "own_months", "own_residual",
                                              "own_hosting_usd", "own_power_w", "own_power_kind", "own_load_factor",
                                              "own_overhead_w", "own_usd_per_kwh", "own_pue", "own_people_usd")))


def _seed(s: Scenario) -> None:
    """Put ``s``'s buy inputs into the widgets when the scenario changed outside them."""
    h = s.self_host
    mark = _mark(s)
    if st.session_state.get(_SYNC_KEY) == mark:
        return
    values = _defaults(s)
    for key, field, _label, *_rest in _NUMBERS:
        st.session_state[key] = None if values[field] is None else float(values[field])
    kind = h.own_power_kind
    st.session_state["be_own_power_source"] = (POWER_TDP if h.own_power_w is None else
                                               POWER_MEASURED if kind.startswith("measured") else POWER_TYPED)
    st.session_state["be_own_power_w"] = h.own_power_w if h.own_power_w is not None else \
        ownership.power_w_per_gpu(catalog.gpu(h.gpu).tdp_w, h.own_load_factor)
    match = [k for k, (_w, text) in _measured_options().items() if text == kind]
    if match:
        st.session_state["be_own_run_point"] = match[0]
    st.session_state[_SYNC_KEY] = mark


def _inputs(s: Scenario) -> dict[str, object]:
    """Render the buy inputs; the own_* values they ask for (a box still at the catalog default keeps None)."""
    defaults = _defaults(s)
    wanted: dict[str, object] = {}
    row = ownership.server_price(s.self_host.gpu)
    if row is None and s.self_host.own_server_usd is None:
        st.warning(f"No sourced purchase price for a {s.self_host.gpu} server in calculators/data/gpu_servers.csv: "
                   "type the server price you were quoted.")
    elif row is not None:
        est = f" (estimated: {', '.join(row.estimate)})" if row.estimate else ""
        st.caption(f"Catalog server: {row.gpus_per_server}x {s.self_host.gpu}, ${row.server_usd:,.0f}, rest of server "
                   f"{row.overhead_w:,.0f} W{est}; {row.notes}. Source: {row.source} ({row.as_of}).")
    cols = st.columns(2)
    for i, (key, field, label, low, high, step, fmt, help_text) in enumerate(_NUMBERS):
        with cols[i % 2]:
            st.number_input(label, min_value=low, max_value=high, step=step, format=fmt, key=key, help=help_text)
        value = st.session_state.get(key)
        current = getattr(s.self_host, field)
        if current is None and value == defaults[field]:
            continue  # still the catalog's value: keep None so it follows the GPU
        wanted[field] = value
    source = st.radio("GPU power", (POWER_TDP, POWER_MEASURED, POWER_TYPED), key="be_own_power_source",
                      horizontal=True)
    tdp = catalog.gpu(s.self_host.gpu).tdp_w
    if source == POWER_TDP:
        st.caption(f"GPU power = TDP {tdp:,.0f} W × load factor {st.session_state['be_own_load_factor']:g} = "
                   f"{tdp * st.session_state['be_own_load_factor']:,.0f} W per GPU: **an assumption, not a "
                   "measurement** (pick a measured run to use one).")
        wanted |= {"own_power_w": None, "own_power_kind": ""}
    elif source == POWER_TYPED:
        st.number_input("GPU power W (mean, per GPU)", min_value=0.0, max_value=1e5, step=10.0, key="be_own_power_w")
        wanted |= {"own_power_w": st.session_state["be_own_power_w"], "own_power_kind": "typed"}
    else:
        options = _measured_options()
        if not options:
            st.info("No bundled probe run carries GPU power; using TDP × load factor.")
            wanted |= {"own_power_w": None, "own_power_kind": ""}
        else:
            pick = st.selectbox("Measured run point (NVML GPU power)", list(options), key="be_own_run_point",
                                help="the mean power of each GPU over that load point; its energy per output "
                                     "token is shown too")
            w, kind = options[pick]
            wanted |= {"own_power_w": w, "own_power_kind": kind}
    return wanted


def breakdown_frame(c: ownership.OwnedCost, gpus: float) -> pd.DataFrame:
    """Per server and for the fleet (``gpus / gpus_per_server`` servers, pro rata), $ per month."""
    servers = gpus / c.buy.gpus_per_server
    rows = [("Purchase, amortized net of residual", c.capex_usd_per_month),
            (f"Energy ({c.energy_kwh_per_month:,.0f} kWh per server)", c.energy_usd_per_month),
            ("Hosting / colocation", c.hosting_usd_per_month), ("People", c.people_usd_per_month),
            ("Total", c.total_usd_per_month)]
    return pd.DataFrame({"Cost": [r[0] for r in rows],
                         "$ per server-month": [round(r[1], 2) for r in rows],
                         f"$ per month, fleet ({servers:,.3g} servers)": [round(r[1] * servers, 2) for r in rows]})


def _apply(s: Scenario, wanted: dict[str, object], tier_wanted: bool) -> tuple[Scenario, list[str]]:
    new, errors = s, []
    for field, value in wanted.items():
        if getattr(new.self_host, field) == value:
            continue
        try:
            new = replace_field(new, f"self_host.{field}", value)
        except ValueError as e:
            errors.append(f"{relabel(str(e), LABELS)} (kept {getattr(new.self_host, field)!r})")
    if tier_wanted and new.self_host.gpu_price_tier != OWNED_TIER:
        try:
            new = apply_gpu_tier(new, OWNED_TIER)
        except ValueError as e:
            errors.append(str(e))
    return new, errors


def owned_section(s: Scenario, errors: list[str]) -> tuple[Scenario, list[str]]:
    """The page's hook, between reading the sidebar and showing its errors: ``s`` with the buy inputs applied
    when the tier box says owned (the tier's own error is dropped once owning applies), else ``s`` as it is."""
    tier_wanted = st.session_state.get(_TIER_KEY) == OWNED_TIER
    if not tier_wanted:
        return s, errors
    before = st.session_state.get(_SYNC_KEY)
    if before and s.self_host.gpu_price_tier == OWNED_TIER and before[0] != s.self_host.gpu:
        # the GPU box changed the GPU: its catalog server and TDP, never the old GPU's quote or measured watts
        try:
            s = dataclasses.replace(s, self_host=for_new_gpu(s.self_host, s.self_host.gpu, reset=True))
        except ValueError as e:
            errors = [*errors, str(e)]
    _seed(s)
    with st.expander("Buying instead of renting: owned GPU servers", expanded=True):
        wanted = _inputs(s)
        new, own_errors = _apply(s, wanted, tier_wanted)
        for e in own_errors:
            st.error(f"Not applied: {e}")
        if new.self_host.gpu_price_tier == OWNED_TIER:
            errors = [e for e in errors if not e.startswith("GPU price tier")]
            _show_breakdown(new)
    st.session_state[_SYNC_KEY] = _mark(new)  # the widgets show ``new`` now: no re-seed over the user's edits
    # the sidebar's $/GPU-hour box shows the derived price: re-seed it once when owning changed the price
    if (new.self_host.gpu_usd_per_hour != st.session_state.get("be_gpu_usd_per_hour")
            and st.session_state.get(_RERUN_KEY) != new):
        from ui import state  # noqa: PLC0415

        st.session_state[_RERUN_KEY] = new
        state.set_scenario(new)
        st.rerun()
    return new, errors


def _show_breakdown(s: Scenario) -> None:
    from ui import cached  # noqa: PLC0415

    c = ownership.owned_cost(buy_input(s.self_host))
    host = cached.evaluate(s).self_host
    st.dataframe(breakdown_frame(c, host.gpus), hide_index=True, key="be_own_breakdown")
    b = c.buy
    power = {"tdp": "TDP × load factor (assumed)", "typed": "typed", "measured": "measured"}[b.power_kind]
    st.caption(
        f"Effective price: **${c.usd_per_gpu_hour:.4f}/GPU-hour** (derived; replaces the rental price) = total "
        f"${c.total_usd_per_month:,.0f} per server-month / {b.gpus_per_server} GPUs / 730 h. Energy kWh/month = "
        f"({b.power_w_per_gpu:,.0f} W per GPU [{power}] × {b.gpus_per_server} + {b.server_overhead_w:,.0f} W) × 730 h "
        f"× PUE {b.pue:g} / 1000. The fleet's {host.gpus:,.0f} GPU(s) are costed pro rata; a purchase is whole "
        "servers, and no interest on the capital is charged.")
    if s.self_host.output_tokens_per_s:
        j = b.power_w_per_gpu * s.self_host.gpus_per_replica / s.self_host.output_tokens_per_s
        st.caption(f"GPU energy per output token at full load: {j:.3g} J "
                   f"(${ownership.energy_usd_per_mtok(j, b.usd_per_kwh, b.pue):.4f} of electricity per M output "
                   "tokens, PUE included).")
