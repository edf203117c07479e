"""One Hypothesis profile for every property test in the suite.

- ``dev`` (default on a developer's machine): random examples, so each run explores new inputs, and the local
  example database (``.hypothesis/``, git-ignored) replays a failure until it is fixed.
- ``ci`` (default when ``CI`` is set, as ``.ci/run`` does): ``derandomize=True``, so a run tests the same
  examples every time and uses no database: CI goes red only when the code changed, and anyone reproduces a red
  run with ``CI=1``. Exploring new inputs is the developers' runs' job (and ``explore``'s).
- ``explore``: random, no database, for a fresh-runs loop (``HYPOTHESIS_PROFILE=explore pytest ...``).
- ``mutation``: deterministic, no database, 10 examples, for ``benchmarks/mutation.py`` (every test is rerun
  per mutant on one core; the goldens and invariants carry most of the killing, 10 examples keep it in minutes).

All of them turn the per-example deadline off: on a busy 2-core machine a scheduler stall can exceed any fixed
deadline, and a deadline is a timing assertion. ``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("dev", **_COMMON)
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("explore", database=None, **_COMMON)
settings.register_profile("mutation", derandomize=True, database=None, max_examples=10, **_COMMON)


def _profile_name() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE", "")
    if name:
        return name
    return "ci" if os.environ.get("CI") else "dev"


try:
    settings.load_profile(_profile_name())
except InvalidArgument as exc:  # a typo in HYPOTHESIS_PROFILE: say which names exist
    raise InvalidArgument(f"{exc}; HYPOTHESIS_PROFILE must be one of dev, ci, explore, mutation") from None

# API price data: tests use the pinned genai-prices data (never a developer's fetched copy) and can never
# reach the network through the updater (a test that fetches sets its own 127.0.0.1 URL).
os.environ["SELFHOST_PRICES_DIR"] = os.path.join(os.path.dirname(__file__), "fixtures", "no-fetched-prices")
os.environ["SELFHOST_PRICES_URL"] = "http://127.0.0.1:9/no-network-in-tests"

# --- the results store on both backends (issue 13): a throwaway PostgreSQL server for the whole session ---------

@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest):
    """One throwaway PostgreSQL cluster (tests/pg_server.py), started on first use, removed at the end of the
    session even when tests fail. Skipped with the reason when it cannot start, unless
    ``APP_TEST_REQUIRE_POSTGRES`` is set (``make test`` sets it): then that is a failure, never a silent skip."""
    from tests.pg_server import PostgresUnavailable, ThrowawayPostgres  # noqa: PLC0415

    server = ThrowawayPostgres()
    request.addfinalizer(server.stop)
    try:
        import psycopg  # noqa: F401, PLC0415

        server.start()
    except (PostgresUnavailable, ImportError) as exc:
        if os.environ.get("APP_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here (APP_TEST_REQUIRE_POSTGRES is set, as make test does) but "
                        f"could not be started: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL cannot be started on this machine: {exc}")
    return server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Where a fresh, empty results store is: a SQLite file in tmp_path, or a new schema on the session's
    PostgreSQL server (each test gets its own)."""
    if request.param == "sqlite":
        return str(tmp_path / "results.sqlite")
    return request.getfixturevalue("postgres_server").fresh_url()
