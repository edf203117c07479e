"""probes.target.synthetic: model directories vLLM can serve with --load-format dummy (tokenizer covers the vocab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.target.synthetic import (
    CATALOG,
    MARKER_FILE,
    SPECIAL_TOKENS,
    SyntheticArch,
    build_vocab,
    read_vocab_size,
    resolve_arch,
    tokenizer_json,
    write_model_dir,
)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=10, max_value=5000))
def test_vocab_covers_every_id_exactly_once(vocab_size: int) -> None:
    vocab = build_vocab(vocab_size)
    assert sorted(vocab.values()) == list(range(vocab_size))
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))


def test_vocab_too_small_is_rejected() -> None:
    with pytest.raises(ValueError, match="vocab_size must be >= 10"):
        build_vocab(5)


def test_tokenizer_json_is_a_wordlevel_metaspace_tokenizer() -> None:
    doc = tokenizer_json(build_vocab(100))
    assert doc["model"]["type"] == "WordLevel" and doc["model"]["unk_token"] == "<unk>"
    assert doc["pre_tokenizer"]["type"] == doc["decoder"]["type"] == "Metaspace"
    assert [(a["id"], a["content"], a["special"]) for a in doc["added_tokens"][:3]] == [
        (0, "<unk>", True), (1, "<s>", True), (2, "</s>", True)]
    assert len(doc["model"]["vocab"]) == 100


def test_catalog_model_directory(tmp_path: Path) -> None:
    d = write_model_dir("meta-llama/Llama-3.3-70B-Instruct", tmp_path / "m", max_position_embeddings=4096)
    config = json.loads((d / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 80
    assert config["vocab_size"] == 128256 and config["max_position_embeddings"] == 4096
    assert config["eos_token_id"] == 2
    tok = json.loads((d / "tokenizer.json").read_text())
    assert len(tok["model"]["vocab"]) == 128256
    tcfg = json.loads((d / "tokenizer_config.json").read_text())
    assert tcfg["eos_token"] == "</s>" and "chat_template" in tcfg and tcfg["model_max_length"] == 4096
    marker = json.loads((d / MARKER_FILE).read_text())
    assert marker["weights"] == "synthetic" and marker["arch"]["hidden_size"] == 8192
    assert read_vocab_size(d) == 128256


def test_qwen_shape_has_attention_bias(tmp_path: Path) -> None:
    config = json.loads((write_model_dir("qwen2.5-7b", tmp_path) / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["attention_bias"] is True


def test_user_config_json_is_copied_unchanged(tmp_path: Path) -> None:
    user = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32768,
            "hidden_size": 4096, "sliding_window": None, "custom_field": [1, 2]}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text(json.dumps(user))
    for source in (tmp_path / "src" / "config.json", tmp_path / "src"):
        d = write_model_dir(source, tmp_path / "out")
        assert json.loads((d / "config.json").read_text()) == user
        assert len(json.loads((d / "tokenizer.json").read_text())["model"]["vocab"]) == 32768
        assert json.loads((d / MARKER_FILE).read_text())["kind"] == "config.json"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"architectures": ["X"]}', "vocab_size must be an integer >= 64"),
    ('{"vocab_size": 1000}', "'architectures' is required"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_bad_user_config_is_a_clear_value_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        write_model_dir(path, tmp_path / "out")


def test_unknown_sources() -> None:
    with pytest.raises(ValueError, match="unknown synthetic model 'gpt-9'"):
        resolve_arch("gpt-9")
    with pytest.raises(ValueError, match="does not exist"):
        write_model_dir("/nonexistent/config.json", "/tmp/never-written")


def test_arch_validation() -> None:
    base = CATALOG["tiny"]
    with pytest.raises(ValueError, match="num_attention_heads must be a multiple"):
        SyntheticArch(**{**base.__dict__, "num_key_value_heads": 3})
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        SyntheticArch(**{**base.__dict__, "hidden_size": 0})
    with pytest.raises(ValueError, match="max_position_embeddings must be >= 16"):
        write_model_dir("tiny", "/tmp/unused", max_position_embeddings=8)


def test_read_vocab_size_when_unknown(tmp_path: Path) -> None:
    assert read_vocab_size(tmp_path) is None
    (tmp_path / "config.json").write_text('{"vocab_size": "big"}')
    assert read_vocab_size(tmp_path) is None


def test_project_catalog_ids_resolve_including_moe(tmp_path: Path) -> None:
    arch = resolve_arch("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert (arch.architecture, arch.num_experts, arch.experts_per_token) == ("MixtralForCausalLM", 8, 2)
    config = json.loads((write_model_dir("mistralai/Mixtral-8x7B-Instruct-v0.1", tmp_path) / "config.json").read_text())
    assert config["num_local_experts"] == 8 and config["num_experts_per_tok"] == 2 and config["model_type"] == "mixtral"
