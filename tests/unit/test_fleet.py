"""Fleet probing (probes.load.fleet): balancing policies with scripted in-flight counts, the client's replica
hook over a fake SSE session, per-replica aggregation, attach checks against real local HTTP servers, the CLI."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator

import pytest

from probes.cli import build_parser, format_table, main
from probes.errors import EndpointError
from probes.load import client as loadgen
from probes.load.client import RequestResult
from probes.load.fleet import Balancer, FleetSpec, describe_fleet, fleet_point, imbalance, split_endpoints
from probes.results.schema import check_run
from probes.target.endpoint import attach_fleet
from tests.unit.test_loadgen import DONE, FakeResponse, FakeSession, ScriptedClock, req, token, usage

# -- policies -----------------------------------------------------------------------------------------------


def test_round_robin_cycles_in_send_order_whatever_is_in_flight() -> None:
    b = Balancer(["a", "b", "c"], "round-robin")
    picks = [b.choose() for _ in range(7)]
    assert picks == [0, 1, 2, 0, 1, 2, 0]
    assert b.in_flight == [3, 2, 2] and b.sent == [3, 2, 2]


def test_least_inflight_follows_a_scripted_in_flight_count() -> None:
    b = Balancer(["a", "b", "c"], "least-inflight")
    assert [b.choose(), b.choose(), b.choose()] == [0, 1, 2]  # all idle: ties by order
    b.release(1, ok=True)  # in flight [1, 0, 1]
    assert b.choose() == 1
    b.release(0, ok=True)
    b.release(2, ok=True)  # in flight [0, 1, 0]
    assert [b.choose(), b.choose()] == [0, 2]  # tie between 0 and 2 -> 0 first, then 2 ([1, 1, 0])
    assert b.choose() == 0  # [1,1,1] tie -> 0
    assert b.in_flight == [2, 1, 1]


def test_least_inflight_at_concurrency_one_always_picks_the_first_replica() -> None:
    b = Balancer(["a", "b"], "least-inflight")
    for _ in range(4):
        i = b.choose()
        b.release(i, ok=True)
    assert b.sent == [4, 0]


@pytest.mark.parametrize("policy", ["round-robin", "least-inflight"])
def test_a_replica_failing_three_times_in_a_row_is_ejected(policy: str) -> None:
    b = Balancer(["a", "b"], policy)
    for expected in (False, False, True):
        b.in_flight[1] += 1
        b.release(1, ok=False)
        assert b.ejected == [False, expected]
    assert {b.choose() for _ in range(5)} == {0}


def test_successes_reset_the_failure_run_and_cancellations_do_not_count() -> None:
    b = Balancer(["a", "b"], "round-robin", eject_after=2)
    for ok in (False, True, False, None, None):
        b.in_flight[1] += 1
        b.release(1, ok=ok)
    assert b.ejected == [False, False]
    b.in_flight[1] += 1
    b.release(1, ok=False)
    assert b.ejected == [False, True]


def test_when_every_replica_is_ejected_all_take_requests_again() -> None:
    b = Balancer(["a", "b"], "round-robin", eject_after=1)
    b.in_flight = [1, 1]
    b.release(0, ok=False)
    b.release(1, ok=False)
    assert [b.choose(), b.choose(), b.choose()] == [0, 1, 0]


def test_bad_policy_and_spec_are_named() -> None:
    with pytest.raises(ValueError, match="balance policy must be one of round-robin, least-inflight"):
        Balancer(["a"], "random")
    with pytest.raises(ValueError, match="--balance must be one of"):
        FleetSpec(("a", "b"), "weighted")
    with pytest.raises(ValueError, match="at least 2 replica URLs"):
        FleetSpec(("a",))


def test_endpoints_split_on_commas_and_spaces() -> None:
    assert split_endpoints(["http://a:1,http://b:2/v1/"]) == ("http://a:1", "http://b:2")
    with pytest.raises(ValueError, match="given twice"):
        split_endpoints(["http://a:1", "http://a:1/"])


# -- the client's replica hook ------------------------------------------------------------------------------


def test_run_load_sends_each_request_to_the_chosen_replica_and_records_it(monkeypatch) -> None:
    """Replica 1 answers 503: its requests fail as data, it is ejected after 3, replica 0 serves the rest."""
    clock = ScriptedClock()
    monkeypatch.setattr(loadgen, "time", clock)

    def respond_for(url: str) -> FakeResponse:
        if url.startswith("http://r1"):
            return FakeResponse([], status=503, reason="Service Unavailable", body="down")
        return FakeResponse([(0.1, token()), (0.1, token()), (0.0, usage(4, 2)), (0.0, DONE)], clock=clock)

    session = FakeSession(lambda payload: None)
    session.post = lambda url, *, json, headers, timeout: (session.calls.append({"url": url}) or  # type: ignore[method-assign]
                                                            respond_for(url))
    b = Balancer(["http://r0", "http://r1"], "round-robin")
    load = loadgen.run_load_sync(base_url="http://r0", model="m", requests=[req(i) for i in range(10)],
                                 session=session, concurrency=1, chooser=b)
    replicas = [r.replica for r in load.results]
    assert replicas == [0, 1, 0, 1, 0, 1, 0, 0, 0, 0]  # ejected after its third failure
    assert [c["url"] for c in session.calls][:2] == ["http://r0/v1/completions", "http://r1/v1/completions"]
    assert all(r.success for r in load.results if r.replica == 0)
    assert all(not r.success and r.error.startswith("HTTP 503") for r in load.results if r.replica == 1)
    assert b.in_flight == [0, 0] and b.ejected == [False, True]

    block = fleet_point(load.results, load.duration_s, b.urls, balance="round-robin", ejected=b.ejected)
    r0, r1 = block["replicas"]
    assert (r0["sent"], r0["completed"], r0["failed"]) == (7, 7, 0)
    assert (r1["sent"], r1["completed"], r1["failed"], r1["ejected"]) == (3, 0, 3, True)
    assert block["failed_replicas"] == [1] and block["idle_replicas"] == [1]
    assert block["imbalance_requests"] is None  # replica 1 completed nothing: unbounded
    assert r1["ttft_ms"] == {"median": None, "p99": None, "mean": None}  # no latency, not 0 ms


def test_one_endpoint_results_carry_no_replica(monkeypatch) -> None:
    monkeypatch.setattr(loadgen, "time", ScriptedClock())
    session = FakeSession(lambda payload: FakeResponse([(0.0, token()), (0.0, DONE)]))
    load = loadgen.run_load_sync(base_url="http://x", model="m", requests=[req(0)], session=session)
    assert load.results[0].replica is None and load.results[0].success


# -- aggregation ---------------------------------------------------------------------------------------------


def _ok(index: int, replica: int | None, ttft_s: float, out: int = 10) -> RequestResult:
    return RequestResult(index=index, success=True, prompt_tokens=5, output_tokens=out, requested_output_tokens=out,
                         ttft_s=ttft_s, itl_s=[0.01] * (out - 1), latency_s=ttft_s + 0.01 * (out - 1), replica=replica)


def test_per_replica_metrics_add_up_to_the_total_and_imbalance_is_max_over_min() -> None:
    results = [_ok(0, 0, 0.1), _ok(1, 1, 0.3), _ok(2, 0, 0.1), _ok(3, 0, 0.1),
               RequestResult(index=4, error="HTTP 500", replica=1), RequestResult(index=5, error="interrupted")]
    block = fleet_point(results, 2.0, ["http://a", "http://b"], balance="least-inflight",
                        health_after=[{"ok": True, "status": 200, "error": ""},
                                      {"ok": False, "status": None, "error": "ConnectionError"}])
    r0, r1 = block["replicas"]
    assert (r0["completed"], r0["failed"], r1["completed"], r1["failed"]) == (3, 0, 1, 1)
    assert r0["output_tokens_per_s"] == pytest.approx(15.0) and r1["output_tokens_per_s"] == pytest.approx(5.0)
    assert r0["ttft_ms"]["median"] == pytest.approx(100.0) and r1["ttft_ms"]["median"] == pytest.approx(300.0)
    assert r1["errors"] and block["unattributed"] == 1
    assert block["imbalance_requests"] == pytest.approx(3.0)
    assert block["imbalance_output_tps"] == pytest.approx(3.0)
    assert block["failed_replicas"] == [1] and block["idle_replicas"] == []
    assert imbalance([2.0, 2.0]) == 1.0


def _fleet_run() -> dict:
    block = fleet_point([_ok(0, 0, 0.1), _ok(1, 1, 0.2)], 1.0, ["http://a", "http://b"], balance="round-robin",
                        health_after=[{"ok": True, "status": 200, "error": ""}] * 2)
    return {"schema": "selfhost-vs-api/probe-run/1", "status": "complete", "model": "m", "weights": "unknown",
            "points": [{"concurrency": 2, "completed": 2, "failed": 0, "output_tokens_per_s": 20.0,
                        "requests_per_s": 2.0, "ttft_ms": {"median": 150.0, "p99": 200.0},
                        "tpot_ms": {"median": 10.0, "p99": 10.0}, "itl_ms": {"median": 10.0, "p99": 10.0},
                        "e2el_ms": {"median": 200.0}, "fleet": block}],
            "fleet": {"balance": "round-robin", "replicas": [
                {"index": i, "url": u, "model": "m", "vllm_version": "0.32.0",
                 "health_before": {"ok": True, "status": 200, "error": ""},
                 "health_after": {"ok": i == 0, "status": 200 if i == 0 else None,
                                  "error": "" if i == 0 else "ConnectionError"}}
                for i, u in enumerate(["http://a", "http://b"])]}}


def test_fleet_run_passes_the_schema_and_the_table_shows_every_replica() -> None:
    run = json.loads(json.dumps(_fleet_run()))  # JSON-clean: no inf/NaN
    check_run(run)
    text = format_table(run)
    assert "fleet: 2 replicas, balance round-robin" in text
    assert "replica 1: http://b  health before ok, after DOWN (ConnectionError)" in text
    assert "imbalance requests 1.00x" in text
    rows = [line for line in describe_fleet(run) if line.strip().startswith("conc 2") and "imbalance" not in line]
    assert len(rows) == 2


def test_schema_refuses_a_bad_fleet_block_and_old_runs_stay_valid() -> None:
    run = _fleet_run()
    run["points"][0]["fleet"]["replicas"][1]["output_tokens_per_s"] = "fast"
    with pytest.raises(ValueError, match=r"run.points\[0\].fleet.replicas\[1\].output_tokens_per_s"):
        check_run(run)
    old = _fleet_run()
    del old["fleet"]
    del old["points"][0]["fleet"]
    check_run(old)


# -- attach: real local HTTP servers ------------------------------------------------------------------------


@pytest.fixture
def model_servers() -> Iterator[callable]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(model: str) -> str:
        body = json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                code = 200 if self.path in ("/v1/models", "/health") else 404
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_attach_fleet_names_the_replica_serving_another_model(model_servers) -> None:
    a, b, c = model_servers("tiny"), model_servers("other"), model_servers("tiny")
    assert [i.model for i in attach_fleet([a, c])] == ["tiny", "tiny"]
    with pytest.raises(EndpointError, match=rf"replica {b} serves 'other', but {a} serves 'tiny'"):
        attach_fleet([a, b, c])


def test_cli_refuses_replicas_of_different_models_in_one_line(model_servers, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path))
    a, b = model_servers("tiny"), model_servers("other")
    err = io.StringIO()
    code = main(["run", "--endpoint", a, b, "--no-store", "--concurrency", "1", "--requests", "1"],
                out=io.StringIO(), err=err)
    assert code == 1
    assert err.getvalue().strip().splitlines() == [
        f"error: replica {b} serves 'other', but {a} serves 'tiny': every replica must serve the same model"]


def test_cli_endpoint_takes_several_urls_and_balance_needs_two() -> None:
    ns = build_parser().parse_args(["run", "--endpoint", "http://a:1", "http://b:2,http://c:3",
                                    "--balance", "least-inflight"])
    assert ns.endpoint == "http://a:1,http://b:2,http://c:3" and ns.balance == "least-inflight"
    err = io.StringIO()
    assert main(["run", "--endpoint", "http://a:1", "--balance", "round-robin", "--no-store"],
                out=io.StringIO(), err=err) == 2
    assert "--balance needs two or more --endpoint URLs" in err.getvalue()


# -- vocabulary agreement ------------------------------------------------------------------------------------


def _vocab_case(monkeypatch, other_bound: int):
    from probes import job
    from probes.load.workload import WorkloadSpec
    from probes.target.endpoint import EndpointInfo
    from probes.target.vocabulary import Vocabulary

    monkeypatch.setattr(job, "learn_vocabulary", lambda **kw: Vocabulary("config.json", other_bound, None, note="x"))
    first = Vocabulary("config.json", 4096, None, note="x")
    run = {"fleet": {"replicas": [{"url": "http://a"}]}, "notes": [], "vocabulary": first.to_dict()}
    spec = WorkloadSpec(input_tokens=8, output_tokens=4, num_requests=1)
    req = job.ProbeRequest(config=job.SweepConfig(workload=spec), endpoint="http://a,http://b")
    other = EndpointInfo(base_url="http://b", model="m", models=("m",), vllm_version="0.32.0")
    return job, job._fleet_vocabulary(req, run, first, [other], is_vllm=True), run


def test_replicas_agreeing_on_the_vocabulary_keep_token_ids(monkeypatch) -> None:
    job, vocab, run = _vocab_case(monkeypatch, 4096)
    assert vocab.id_bound == 4096 and run["notes"] == ["all 2 replicas agree on the vocabulary"]
    assert job.sweep_target_kwargs(vocab, "auto")["backend"].name == "vllm-token-ids"


def test_replicas_disagreeing_on_the_vocabulary_fall_back_to_text_with_a_note(monkeypatch) -> None:
    job, vocab, run = _vocab_case(monkeypatch, 32000)
    assert vocab.id_bound is None and run["vocabulary"]["source"] == "none"
    assert "replicas disagree on the vocabulary (http://a: ids below 4096, http://b: below 32000)" in run["notes"][0]
    assert job.sweep_target_kwargs(vocab, "auto")["backend"].name == "completions"
    assert job.sweep_target_kwargs(vocab, "vllm-token-ids").startswith("token ids were asked for")
