"""Widgets shared by the pages: the verdict panel, the scenario load/upload/download panel, URL warnings.

Formatting helpers are pure and doctested:

>>> usd(1234.5)
'$1,234'
>>> usd(-0.25)
'−$0.25'
>>> requests_per_day_text(None)
'never'
>>> requests_per_day_text(12345.6)
'12,346'
>>> gib_text(131.42), gib_text(0.984), gib_text(12345.6), gib_text(6333031132.8)
('131.4 GiB', '0.98 GiB', '12,346 GiB', '6.3 billion GiB')
>>> count_text(463232), count_text(4.2e12), count_text(17.6)
('463,232', '4.2 trillion', '17.6')
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from calculators import tomlcomments
from calculators.filelimits import read_limited
from calculators.provenance import pct_text, usd
from calculators.scenario import MAX_SCENARIO_BYTES, Scenario, dumps_toml, loads_toml, scenario_to_dict
from ui import cached, glossary, state
from ui.inputs import human_error

__all__ = [
    "SCENARIOS_DIR",
    "usd",
    "gib_text",
    "count_text",
    "requests_per_day_text",
    "verdict_headline",
    "example_scenarios",
    "show_url_problems",
    "verdict_panel",
    "scenario_io_panel",
    "download_comments",
]

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
_IO_MESSAGE_KEY = "scn_io_message"
_SOURCE_KEY = "scn_source"  # (file name, Scenario as loaded, its comments): re-emitted on download


_WORDS = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"))


def count_text(x: float) -> str:
    """A count a person reads at a glance: thousands separators, words from a million up (no 1e+09), one
    decimal below 100 when it is not whole."""
    a = abs(x)
    for scale, word in _WORDS:
        if a >= scale:
            return f"{x / scale:,.1f} {word}"
    if a >= 100 or float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:.1f}"


def gib_text(gib: float) -> str:
    """Memory in GiB for a metric or a chart label: 2 decimals below 10, 1 below 10,000, then whole GiB
    with separators, and words from a million GiB (a config.json with absurd sizes reads "6.3 billion GiB")."""
    a = abs(gib)
    if a >= 1e6:
        return f"{count_text(gib)} GiB"
    if a >= 10_000:
        return f"{gib:,.0f} GiB"
    return f"{gib:.2f} GiB" if a < 10 else f"{gib:,.1f} GiB"


def requests_per_day_text(rpd: float | None) -> str:
    """A break-even volume, or the words for "self-hosting never breaks even here"."""
    return "never" if rpd is None else f"{rpd:,.0f}"


def verdict_headline(verdict: str, savings_usd_per_month: float) -> str:
    """One line a meeting can read.

    >>> verdict_headline("self_host", 1200.0)
    'Self-host: saves $1,200 a month'
    >>> verdict_headline("api", -300.0)
    'Use the API: self-hosting would cost $300 a month more'
    """
    if verdict == "self_host":
        return f"Self-host: saves {usd(savings_usd_per_month)} a month"
    if verdict == "api":
        return f"Use the API: self-hosting would cost {usd(-savings_usd_per_month)} a month more"
    raise ValueError(f"verdict must be 'api' or 'self_host', got {verdict!r}")


def example_scenarios() -> dict[str, Path]:
    """The shipped example scenarios, by file stem."""
    return {p.stem: p for p in sorted(SCENARIOS_DIR.glob("*.toml"))}


def show_url_problems() -> None:
    """One ``st.warning`` per bad URL value this session was opened with (shown once), naming the field by
    its label."""
    for problem in state.pop_url_problems():
        st.warning(f"The link had a bad value: {human_error(problem)}.")


def verdict_panel(s: Scenario) -> None:
    """Verdict headline, the six numbers behind it and the reasons, for scenario ``s``."""
    r = cached.evaluate(s)
    with st.container(key="verdict"):
        text = verdict_headline(r.verdict, r.savings_usd_per_month)
        if r.verdict == "self_host":
            st.success(f"**{text}**")
        else:
            st.info(f"**{text}**")
    c = st.columns(3)
    c[0].metric("API, $/month", usd(r.api.usd_per_month))
    c[1].metric("Self-host, $/month", usd(r.self_host.usd_per_month), help="GPUs plus ops")
    c[2].metric("Savings, $/month", usd(r.savings_usd_per_month), help="API cost minus self-host cost")
    c = st.columns(3)
    c[0].metric("Replicas", f"{r.self_host.replicas:,}", help=glossary.term_help("Replica"))
    c[1].metric(
        "GPU utilization", pct_text(r.self_host.utilization),
        help="mean demand / provisioned capacity. " + glossary.term_help("Utilization"),
    )
    c[2].metric(
        "Break-even, requests/day",
        requests_per_day_text(r.breakeven.requests_per_day),
        help=glossary.term_help("Break-even") + " Here the first crossing: the lowest requests/day at which self-hosting is no dearer than the API "
        "(just after each added replica the API can be cheaper again: see the sustained break-even)",
    )
    c = st.columns(3)
    c[2].metric(
        "Sustained break-even, requests/day",
        requests_per_day_text(r.breakeven.sustained_requests_per_day),
        help="the lowest requests/day from which self-hosting is no dearer at every higher volume "
        "(up to 1e10/day)",
    )
    if r.reasons:
        st.markdown("\n".join(f"- {reason}" for reason in r.reasons))


def _load_example() -> None:
    name = st.session_state.get("scn_example")
    if not name:
        return
    path = example_scenarios().get(name)
    try:
        if path is None:
            raise ValueError(f"no example scenario named {name!r}")
        text = read_limited(path, MAX_SCENARIO_BYTES, f"scenario file {str(path)!r}")
        loaded = loads_toml(text, what=f"scenario file {str(path)!r}")
    except (OSError, ValueError) as e:
        st.session_state[_IO_MESSAGE_KEY] = ("error", f"{name}: {e}")
    else:
        state.set_scenario(loaded)
        _keep_source(path.name, loaded, text)
        st.session_state[_IO_MESSAGE_KEY] = ("success", f"Loaded example {name!r}.")
    st.session_state["scn_example"] = None  # back to the placeholder, so the same example can be reloaded


def _load_upload() -> None:
    f = st.session_state.get("scn_upload")
    if f is None:
        return
    try:  # size, encoding (BOM tolerated), depth and numbers are checked on the raw bytes: one-line errors
        s = loads_toml(f.getvalue(), what="the file")
    except ValueError as e:  # ScenarioError, with the file limits of calculators.filelimits
        st.session_state[_IO_MESSAGE_KEY] = ("error", f"{f.name} was not loaded: {e}")
    else:
        state.set_scenario(s)
        _keep_source(f.name, s, f.getvalue())
        st.session_state[_IO_MESSAGE_KEY] = ("success", f"Loaded {f.name}.")


def _keep_source(name: str, loaded: Scenario, text: str | bytes) -> None:
    """Remember the file's comments (its sources) so that the downloaded copy keeps them."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig", errors="replace")
    st.session_state[_SOURCE_KEY] = (name, loaded, tomlcomments.source_comments(text))


def _flat(s: Scenario) -> dict[str, object]:
    d = scenario_to_dict(s)
    out = {k: v for k, v in d.items() if not isinstance(v, dict)}
    out.update({f"{sec}.{k}": v for sec, sub in d.items() if isinstance(sub, dict) for k, v in sub.items()})
    return out


def download_comments(s: Scenario, source: tuple[str, Scenario, tomlcomments.Comments] | None
                      ) -> tomlcomments.Comments | None:
    """The comments to write into the download of ``s``: those of the file it was loaded from (``source``),
    less those of the fields changed since (their source no longer applies), with a header line naming the
    file and the changed fields. None when nothing was loaded (``dumps_toml`` writes its own header).

    >>> from calculators.scenario import DEFAULT_SCENARIO, replace_field
    >>> src = ("ex.toml", DEFAULT_SCENARIO, {"": ("# Sources: X",), "traffic.requests_per_day": ((), "# why")})
    >>> download_comments(DEFAULT_SCENARIO, src)
    {'': ('# Sources: X',), 'traffic.requests_per_day': ((), '# why')}
    >>> download_comments(replace_field(DEFAULT_SCENARIO, "traffic.requests_per_day", 5.0), src)
    {'': ('# Sources: X', '# Edited in the app after loading ex.toml: traffic.requests_per_day')}
    """
    if source is None:
        return None
    name, loaded, comments = source
    before, now = _flat(loaded), _flat(s)
    changed = [k for k in dict.fromkeys([*before, *now]) if before.get(k) != now.get(k)]
    if not changed:
        return comments
    out = tomlcomments.without_keys(comments, changed)
    out[""] = (*out.get("", ()), f"# Edited in the app after loading {name}: {', '.join(changed)}")  # type: ignore[misc]
    return out


def scenario_io_panel(s: Scenario, *, file_stem: str | None = None) -> None:
    """Load an example, upload a TOML scenario, download the current one as TOML."""
    st.selectbox(
        "Load an example scenario",
        list(example_scenarios()),
        index=None,
        placeholder="choose an example…",
        key="scn_example",
        on_change=_load_example,
    )
    st.file_uploader("…or upload a scenario (TOML)", type=["toml"], key="scn_upload", on_change=_load_upload,
                     max_upload_size=1)  # MiB, the browser's cap; ours is MAX_SCENARIO_BYTES (256 KiB)
    message = st.session_state.pop(_IO_MESSAGE_KEY, None)
    if message is not None:
        kind, text = message
        (st.error if kind == "error" else st.success)(text)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", file_stem or s.name or "scenario").strip("-") or "scenario"
    st.download_button(
        "Download scenario (TOML)",
        data=dumps_toml(s, download_comments(s, st.session_state.get(_SOURCE_KEY))),
        file_name=f"{stem}.toml",
        mime="application/toml",
        key="scn_download",
        on_click="ignore",
    )
