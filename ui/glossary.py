"""Plain-words explanations of the technical terms the pages use, for a reader from finance.

One table (``GLOSSARY``), shown as a short glossary in the sidebar of every page (``glossary_panel``) and reused
as tooltips (``term_help``) where a metric or chart names a term.

>>> term_help("TTFT").startswith("Time to first token")
True
>>> term_help("no such term")
Traceback (most recent call last):
...
KeyError: 'no such term'
"""

from __future__ import annotations

import streamlit as st

__all__ = ["GLOSSARY", "term_help", "glossary_markdown", "glossary_panel"]

# term -> one or two sentences, no further jargon (a term used inside another's text is itself in this table).
GLOSSARY: dict[str, str] = {
    "Replica": "One complete copy of the model running on its own GPU or group of GPUs. More traffic needs "
               "more replicas; each one is paid for every hour it runs, busy or not.",
    "Utilization": "The share of the paid GPU time that does useful work, on average over the month. 30% "
                   "means 70% of what you pay for the GPUs sits idle (kept for peaks or a minimum replica count).",
    "TTFT": "Time to first token: how long a user waits before the answer starts appearing (seconds or "
            "milliseconds). Long prompts and busy servers make it longer.",
    "TPOT": "Time per output token: the gap between successive words of the answer once it is streaming "
            "(milliseconds). 20 ms per token is about 50 tokens per second for one user.",
    "Prefill": "The first phase of answering: the model reads the whole prompt at once before it writes "
               "anything. Its speed sets the TTFT for long prompts.",
    "KV cache": "GPU memory that holds the prompt and answer-so-far of every request in flight. When it is "
                "full, new requests wait, so it caps how many users one replica serves at once.",
    "MBU": "Memory-bandwidth utilization: the share of the GPU's memory speed a server actually achieves "
           "while writing answers (typically 50-80%). The throughput estimate assumes one.",
    "Token": "The unit APIs bill by: a piece of a word, about 3/4 of an English word on average. Prices are "
             "quoted in $ per million tokens ($/M).",
    "Break-even": "The traffic (requests per day) from which self-hosting costs no more per month than the API.",
}


def term_help(term: str) -> str:
    """The glossary text for ``term`` (a tooltip); KeyError for a term not in the table."""
    return GLOSSARY[term]


def glossary_markdown() -> str:
    """The glossary as a Markdown list, one bold term per line.

    >>> glossary_markdown().splitlines()[0].startswith("- **Replica**: One complete copy")
    True
    """
    return "\n".join(f"- **{term}**: {text}" for term, text in GLOSSARY.items())


def glossary_panel() -> None:
    """A collapsed "Glossary" expander (key ``glossary``) in the sidebar."""
    with st.sidebar.expander("Glossary: the terms in plain words", expanded=False):
        st.markdown(glossary_markdown())
