"""Keep a scenario file's comments through a load and a download: read them from the source text, put them back
next to the same keys in a freshly written TOML text.

A scenario's comments say where each number came from ("measured: Lambda vllm-benchmark ...", "assumption: a
mid-size support desk"); a downloaded copy that dropped them would lose its sources. Only the simple layout our
files use is understood: comment lines, ``[section]`` headers and one-line ``key = value  # comment`` pairs.

``Comments`` maps ``""`` to the header (the comment lines before the first key), ``"[section]"`` to the lines
above a section header, and ``"section.key"`` (``"key"`` at the top level) to ``(lines above, inline comment)``.

>>> src = "# header\\nname = 'x'\\n\\n[traffic]\\n# why\\nrequests_per_day = 20000  # an assumption\\n"
>>> c = source_comments(src)
>>> c[""], c["traffic.requests_per_day"]
(('# header',), (('# why',), '# an assumption'))
>>> print(with_comments("name = \\"x\\"\\n\\n[traffic]\\nrequests_per_day = 30000\\n", c), end="")
# header
name = "x"
<BLANKLINE>
[traffic]
# why
requests_per_day = 30000  # an assumption
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Comments", "source_comments", "with_comments", "without_keys"]

Comments = dict[str, tuple[str, ...] | tuple[tuple[str, ...], str]]

_SECTION = re.compile(r"^\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=")


def _inline_comment(line: str) -> str:
    """The ``# ...`` part of a ``key = value`` line, outside any quoted string; "" when there is none."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[i:].strip()
        i += 1
    return ""


def source_comments(text: str) -> Comments:
    """The comments of a scenario TOML text, by the key they sit next to (see the module docstring)."""
    out: Comments = {}
    pending: list[str] = []
    section = ""
    seen_content = False
    for raw in text.split("\n"):  # not splitlines: it also splits at \u2028 etc. inside strings
        line = raw.strip()
        if line.startswith("#"):
            pending.append(line)
            continue
        if not line:
            if pending and not seen_content:  # the header ends at its first blank line or first key
                out[""] = (*out.get("", ()), *pending)  # type: ignore[misc]
                pending = []
            continue
        if not seen_content and pending:
            out[""] = (*out.get("", ()), *pending)  # type: ignore[misc]
            pending = []
        seen_content = True
        if m := _SECTION.match(line):
            section = m.group(1)
            if pending:
                out[f"[{section}]"] = tuple(pending)
        elif m := _KEY.match(line):
            key = f"{section}.{m.group(1)}" if section else m.group(1)
            inline = _inline_comment(line[m.end():])
            if pending or inline:
                out[key] = (tuple(pending), inline)
        pending = []
    if pending:
        out["#end"] = tuple(pending)
    return out


def without_keys(comments: Comments, keys: Iterable[str]) -> Comments:
    """``comments`` less those of ``keys`` (fields whose value changed: their source no longer applies)."""
    drop = set(keys)
    return {k: v for k, v in comments.items() if k not in drop}


def with_comments(toml_text: str, comments: Comments) -> str:
    """``toml_text`` (as ``tomli_w`` writes it) with ``comments`` put back above and beside their keys."""
    out: list[str] = list(comments.get("", ()))  # type: ignore[arg-type]
    section = ""
    for line in toml_text.rstrip("\n").split("\n"):
        if m := _SECTION.match(line):
            section = m.group(1)
            out.extend(comments.get(f"[{section}]", ()))  # type: ignore[arg-type]
        elif m := _KEY.match(line):
            key = f"{section}.{m.group(1)}" if section else m.group(1)
            above, inline = comments.get(key, ((), ""))  # type: ignore[misc]
            out.extend(above)
            line = f"{line}  {inline}" if inline else line
        out.append(line)
    out.extend(comments.get("#end", ()))  # type: ignore[arg-type]
    return "\n".join(out) + "\n"
