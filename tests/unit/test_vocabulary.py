"""probes.target.vocabulary: safe prompt ids are learned without ever sending a generation request.

The regression behind it: vLLM 0.26.0 crashes (HTTP 500, engine dead) on a prompt id equal to the vocabulary
size, and the old bisection had to send that id. Here every test that talks to a server records the requests
it got and asserts that none but ``/tokenize`` was sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.target.server import VllmServer
from probes.target.synthetic import build_vocab, tokenizer_json, write_model_dir
from probes.target.vocabulary import (
    MIN_POOL,
    POOL_TEXT,
    Vocabulary,
    learn_vocabulary,
    local_vocab_size,
    read_tokenizer_size,
    tokenize_pool,
)
from tests.unit.test_server import INSTALL, STAND_IN


class _Response:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code, self._body = status, body

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


class FakeSession:
    """Records every POST; answers ``/tokenize`` with ``tokens`` (or ``status``)."""

    def __init__(self, tokens: Any = None, status: int = 200) -> None:
        self.tokens, self.status = tokens, status
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, *, json: dict[str, Any], headers: dict[str, str], timeout: float) -> _Response:
        self.posts.append((url, json))
        assert timeout > 0
        return _Response(self.status, {"count": 0, "tokens": self.tokens})


def test_user_vocab_size_comes_first_and_is_clamped_to_a_local_config(tmp_path: Path) -> None:
    session = FakeSession(list(range(100)))
    v = learn_vocabulary(base_url="http://x", model="m", is_vllm=True, vocab_size=5000, session=session)
    assert (v.source, v.vocab_size, v.token_pool, v.id_bound) == ("user", 5000, None, 5000)
    model = write_model_dir("tiny", tmp_path / "tiny")  # vocab 4096
    v = learn_vocabulary(base_url="http://x", model="m", is_vllm=True, vocab_size=128257, model_path=model)
    assert (v.source, v.vocab_size) == ("user", 4096) and "lowered to 4096" in v.note
    assert session.posts == []  # a known vocabulary needs no request at all
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1"):
        learn_vocabulary(base_url=None, model="m", is_vllm=False, vocab_size=0)


def test_local_config_and_a_smaller_tokenizer(tmp_path: Path) -> None:
    model = write_model_dir("tiny", tmp_path / "tiny")
    assert local_vocab_size(model) == read_tokenizer_size(model) == 4096
    # a Qwen2.5-like model: more embedding rows (config) than tokenizer ids -> the smaller bound
    (model / "tokenizer.json").write_text(json.dumps(tokenizer_json(build_vocab(3000))))
    assert local_vocab_size(model) == 3000
    v = learn_vocabulary(base_url="http://x", model="m", is_vllm=True, model_path=model, session=FakeSession([1]))
    assert (v.source, v.vocab_size, v.backend) == ("config.json", 3000, "vllm-token-ids")
    assert local_vocab_size(tmp_path / "nothing") is None and read_tokenizer_size(tmp_path) is None
    (tmp_path / "config.json").write_text('{"vocab_size": true}')  # JSON true is not a size
    assert local_vocab_size(tmp_path) is None


def test_tokenize_pool_keeps_distinct_ids_above_the_reserved_ones() -> None:
    session = FakeSession([0, 5, 40, 17, 40, 300, 16])
    assert tokenize_pool("http://h:1/", "served", session=session) == (16, 17, 40, 300)
    url, body = session.posts[0]
    assert url == "http://h:1/tokenize"
    assert body == {"model": "served", "prompt": POOL_TEXT, "add_special_tokens": False}


@pytest.mark.parametrize("tokens", [None, "x", [1, "2"], [3, -1], [True, 20], []])
def test_tokenize_pool_rejects_anything_but_a_list_of_ids(tokens: Any) -> None:
    assert tokenize_pool("http://h", "m", session=FakeSession(tokens)) is None


def test_tokenize_refused_or_too_small_falls_back_to_text() -> None:
    v = learn_vocabulary(base_url="http://h", model="m", is_vllm=True, session=FakeSession(None, status=404))
    assert (v.source, v.id_bound, v.backend) == ("none", None, "completions")
    few = FakeSession(list(range(16, 16 + MIN_POOL - 1)))
    v = learn_vocabulary(base_url="http://h", model="m", is_vllm=True, session=few)
    assert v.source == "none" and f"only {MIN_POOL - 1} distinct ids" in v.note


def test_a_non_vllm_endpoint_is_not_asked_anything() -> None:
    session = FakeSession(list(range(100)))
    v = learn_vocabulary(base_url="https://api.example.com", model="gpt", is_vllm=False, session=session)
    assert (v.source, v.backend) == ("none", "completions") and session.posts == []
    assert v.to_dict() == {"source": "none", "size": None, "pool_size": None, "backend": "completions",
                           "note": v.note}


@given(st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=50))
def test_every_id_below_the_bound_is_at_most_a_tokenizer_id(pool: list[int]) -> None:
    v = Vocabulary("tokenize", None, tuple(sorted(set(pool))))
    assert v.id_bound == max(pool) + 1  # nothing beyond what the server's tokenizer itself produced


def test_vocabulary_rejects_a_pool_past_its_size() -> None:
    with pytest.raises(ValueError, match="token_pool holds id 4096 >= vocab_size 4096"):
        Vocabulary("user", 4096, (20, 4096))
    with pytest.raises(ValueError, match="source must be one of"):
        Vocabulary("guess", 10, None)


def test_learned_from_a_server_with_only_tokenize_requests(tmp_path: Path) -> None:
    """End to end over HTTP (the stand-in server): one /tokenize request, no completion, ids from its answer."""
    script = tmp_path / "fake-python"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "requests.jsonl"
    ids = ",".join(str(i) for i in (1, 2, *range(100, 140)))
    s = VllmServer(model="m", vllm_python=str(script), log_path=str(tmp_path / "server.log"),
                   env={"FAKE_MODE": "ready", "FAKE_TOKENIZE": ids, "FAKE_VOCAB": "4096",
                        "FAKE_REQUEST_LOG": str(log)})
    s.install = INSTALL
    with s:
        v = learn_vocabulary(base_url=s.base_url, model="standin-model", is_vllm=True)
    assert v.source == "tokenize" and v.token_pool == tuple(range(100, 140)) and v.id_bound == 140
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["path"] for r in sent] == ["/tokenize"]
    assert sent[0]["body"]["model"] == "standin-model"
