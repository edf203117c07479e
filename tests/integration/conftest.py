"""Fixtures for the integration tests: the vLLM interpreter, a tiny synthetic model, ONE shared server.

The machine has 2 cores and vLLM pins its model thread to core 0, so at most one server runs at a time:
``vllm_server`` is one shared server (:class:`ServerPool`) for every test that only needs a healthy one;
a test that starts its own vLLM (the CLI) releases the shared one first, and one that kills the shared
server leaves the pool to restart it for the next user.

``VLLM_PYTHON`` names the interpreter of vLLM's environment (``make test`` sets it). Unset or missing:
the tests skip with the reason, except when ``CI`` is set, where that is a failure.

Order (``pytest_collection_modifyitems`` below): starting the CPU vLLM costs 30-60 s, so the tests run in
the order that starts the shared server once: first every test that only uses ``vllm_server``, then those that
consume it (``SHARED_SERVER_CONSUMERS``: they take the running shared server and kill it), then those that
release it to start a vLLM of their own, then the rest. The terminal summary says how often it started.

No-leftover checks: every server started here (directly or through the CLI) gets ``PROBE_TEST_TAG`` in its
environment; :func:`tagged_processes` scans ``/proc/*/environ`` for it, so orphans re-parented to init
are found too, and other people's vLLM servers on the same machine are not.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probes.target.server import VllmServer
from probes.target.synthetic import write_model_dir

__all__ = ["TINY_MAX_MODEL_LEN", "SERVE_ARGS", "SHARED_SERVER_CONSUMERS", "ServerPool", "tagged_processes",
           "wait_gone"]

TINY_MAX_MODEL_LEN = 512
SERVE_ARGS = ("--load-format", "dummy", "--max-model-len", str(TINY_MAX_MODEL_LEN), "--enforce-eager")


# tests that take the shared server from the pool and kill it: right after the users of the healthy server,
# before any test releases it (a renamed test only costs one more start, never a wrong result)
SHARED_SERVER_CONSUMERS = frozenset({"test_hang_then_death_mid_run"})
_STARTS: list[int] = []


def _rank(item: pytest.Item) -> int:
    fn = getattr(item, "function", None)
    names = set(inspect.signature(fn).parameters) if fn is not None else set()  # its own arguments only
    if "vllm_server" in names and "vllm_pool" not in names:
        return 0
    if getattr(item, "originalname", item.name) in SHARED_SERVER_CONSUMERS:
        return 1
    return 2 if "vllm_pool" in names else 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder the integration tests in place (see the module docstring); other tests keep their slots."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in Path(str(item.path)).parents]
    ordered = sorted((items[i] for i in slots), key=_rank)  # stable: file order within a rank
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _STARTS:
        terminalreporter.write_line(f"integration: the shared vLLM server started {_STARTS[-1]} time(s)")


def tagged_processes(tag: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose environment holds ``PROBE_TEST_TAG=<tag>``."""
    needle = f"PROBE_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(tag: str, timeout_s: float = 15.0) -> list[int]:
    """Wait (bounded) until no process carries ``tag``; returns those still there (empty = clean)."""
    deadline = time.monotonic() + timeout_s
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def leftovers() -> Callable[[str], list[int]]:
    """``leftovers(tag)``: the processes with that tag still alive after a bounded wait (should be [])."""
    return wait_gone


@pytest.fixture(scope="session")
def vllm_python() -> str:
    path = os.environ.get("VLLM_PYTHON", "")
    if not path or not Path(path).exists():
        reason = (f"VLLM_PYTHON={path!r} is unset or missing: run `make vllm-env` and set VLLM_PYTHON to "
                  "its bin/python (make test does both)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic model: 2 layers, hidden 256, vocab 4096 (max_position_embeddings 2048)."""
    return write_model_dir("tiny", tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def test_tag() -> str:
    return uuid.uuid4().hex


class ServerPool:
    """At most one shared vLLM server: ``get()`` starts it when absent or dead, ``release()`` stops it.

    Tests that start a vLLM of their own call ``release()`` first, so two never run at once.
    """

    def __init__(self, *, vllm_python: str, model: Path, tag: str, log_dir: Path) -> None:
        self.vllm_python, self.model, self.tag, self.log_dir = vllm_python, model, tag, log_dir
        self.server: VllmServer | None = None
        self.starts = 0

    def get(self) -> VllmServer:
        if self.server is not None and self.server.is_running():
            return self.server
        self.release()
        self.starts += 1
        server = VllmServer(model=str(self.model), serve_args=SERVE_ARGS, vllm_python=self.vllm_python,
                            served_model_name="tiny", log_path=str(self.log_dir / f"server-{self.starts}.log"),
                            startup_timeout_s=240, env={"PROBE_TEST_TAG": self.tag})
        server.__enter__()  # starts, waits for /health; stops the group itself if that fails
        self.server = server
        return server

    def release(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="session")
def vllm_pool(vllm_python: str, tiny_model: Path, test_tag: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(vllm_python=vllm_python, model=tiny_model, tag=test_tag,
                      log_dir=tmp_path_factory.mktemp("vllm-logs"))
    try:
        yield pool
    finally:
        pool.release()
        _STARTS.append(pool.starts)
    assert not wait_gone(test_tag), "the shared vLLM server left processes behind"


@pytest.fixture
def vllm_server(vllm_pool: ServerPool) -> VllmServer:
    """The shared healthy vLLM server (started through probes.target.server on first use or after a fault test)."""
    return vllm_pool.get()


@pytest.fixture
def fresh_tag() -> str:
    """A tag of this test only (the shared server carries the session's tag)."""
    return uuid.uuid4().hex


@pytest.fixture
def tag_env(fresh_tag: str, tmp_path: Path) -> dict[str, str]:
    """The caller's environment plus this test's tag and its own data dir (GPU lock files), for the CLI."""
    return {**os.environ, "PROBE_TEST_TAG": fresh_tag, "APP__PROBE__DATA_DIR": str(tmp_path / "data")}
