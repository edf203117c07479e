"""The doctests of the mutated modules, as a test file that ``benchmarks/mutation.py`` can select.

``make test`` runs every module's doctests (``--doctest-modules``), so they belong in the mutation score. mutmut
rewrites a module into a trampoline plus one copy of each function per mutant, every copy with the docstring,
so collecting the rewritten file would run each docstring hundreds of times. This file runs only the
module docstring and the docstrings of the names in ``__all__`` (the trampolines, which call the mutant
under test). Not collected by ``make test`` (its name does not start with ``test_``): there the real
``--doctest-modules`` run does the same.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ("calculators.cost", "probes.load.metrics", "probes.load.workload", "probes.results.store")


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(recurse=False)
    found = list(finder.find(module, module_name))
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if callable(obj) or isinstance(obj, type):
            found += finder.find(obj, f"{module_name}.{name}", module=module, globs=vars(module).copy())
    return [t for t in found if t.examples]


@pytest.mark.parametrize("module_name", MODULES)
def test_public_doctests(module_name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = _doctests(module_name)
    assert tests, module_name
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {module_name}"
