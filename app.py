"""Entry point: the navigation, with every page named in words (``make run`` or ``streamlit run app.py``).

``st.navigation`` replaces file-based discovery so that the menu reads "Home", "Break-even", ... instead of
"app" and "Break even". Each page keeps the URL it had under file-based discovery (``/``, ``/Break_even``,
``/Capacity``, ``/Probe``, ``/Results``), so old links and ``AppTest.switch_page("app_pages/…")`` still work.
To add a page, append one ``(file, title, icon, url_path)`` row to ``PAGES``.
"""

from pathlib import Path

import streamlit as st

from ui import glossary

# (page file, title shown in the menu and the tab, icon, URL path); the first one is the home page (root URL).
PAGES: list[tuple[str, str, str, str]] = [
    ("app_pages/0_Home.py", "Home", "⚖️", ""),
    ("app_pages/1_Break_even.py", "Break-even", "📈", "Break_even"),
    ("app_pages/2_Capacity.py", "Capacity", "🧮", "Capacity"),
    ("app_pages/3_Probe.py", "Probe", "🔬", "Probe"),
    ("app_pages/4_Results.py", "Results", "📊", "Results"),
    ("app_pages/5_Options.py", "Options", "🧾", "Options"),
    ("app_pages/6_Fleet.py", "Fleet", "🚚", "Fleet"),
]

_ROOT = Path(__file__).resolve().parent

st.set_page_config(page_title="Self-host or API?", page_icon="⚖️", layout="wide")
page = st.navigation([
    st.Page(path, title=title, icon=icon, url_path=url or None, default=not url)
    for path, title, icon, url in PAGES
    if (_ROOT / path).is_file()
])
glossary.glossary_panel()  # every page: the technical terms in plain words, collapsed under the menu
page.run()
