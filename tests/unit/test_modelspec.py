"""Model catalog and config.json parsing: params vs published sizes, fixtures, bad configs, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.modelspec import (
    ModelArch,
    from_config,
    from_config_text,
    load_model,
    model,
    models,
    published_params_b,
)
from tests.strategies import FUZZ

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def test_catalog_has_the_required_models_with_sources():
    needed = ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
              "Qwen/Qwen2.5-72B-Instruct", "mistralai/Mixtral-8x7B-Instruct-v0.1",
              "mistralai/Mixtral-8x22B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.2", "google/gemma-2-9b-it",
              "google/gemma-2-27b-it", "microsoft/phi-4"]
    for m in needed:
        assert models()[m].source and models()[m].as_of


@pytest.mark.parametrize("model_id", list(published_params_b()))
def test_computed_params_match_published_sizes(model_id):
    assert models()[model_id].total_params / 1e9 == pytest.approx(published_params_b()[model_id], rel=0.005)


def test_golden_llama_8b_by_hand():
    # embed + lm_head 2*128256*4096; per layer q,o 4096^2 each, k,v 4096*1024 each, MLP 3*4096*14336, 2 norms
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert model("meta-llama/Llama-3.1-8B-Instruct").total_params == 32 * per_layer + 2 * 128256 * 4096 + 4096


def test_moe_active_params_by_hand():
    m = model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert m.total_params - m.active_params == 6 * 3 * 4096 * 14336 * 32  # 6 idle experts of 8
    assert m.active_params / 1e9 == pytest.approx(12.88, rel=0.01)


@pytest.mark.parametrize(("fixture", "catalog_id"), [
    ("llama-3.1-8b.json", "meta-llama/Llama-3.1-8B-Instruct"),
    ("mixtral-8x7b.json", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    ("gemma-2-9b.json", "google/gemma-2-9b-it"),
    ("qwen2.5-7b.json", "Qwen/Qwen2.5-7B-Instruct"),
    ("phi3-style.json", "microsoft/phi-4"),
])
def test_config_fixture_matches_catalog(fixture, catalog_id):
    arch = load_model(str(CONFIGS / fixture))
    cat = model(catalog_id)
    assert (arch.total_params, arch.active_params, arch.kv_elements_per_token()) == (
        cat.total_params, cat.active_params, cat.kv_elements_per_token())


@pytest.mark.parametrize(("fixture", "message"), [
    ("bad-missing-fields.json", "missing required field(s): num_attention_heads, intermediate_size, vocab_size"),
    ("bad-zero-heads.json", "num_attention_heads must be >= 1, got 0"),
    ("bad-heads-not-divisible.json", "num_attention_heads (32) must be divisible by num_key_value_heads (6)"),
    ("bad-hidden-not-divisible.json", "hidden_size (4000) must be divisible by num_attention_heads (48)"),
    ("bad-string-layers.json", "num_hidden_layers must be a whole number"),
    ("bad-truncated.json", "config.json is not valid JSON"),
    ("bad-array.json", "expected a JSON object, got list"),
])
def test_bad_configs_raise_a_clear_message(fixture, message):
    with pytest.raises(ValueError, match=None) as exc:
        from_config_text((CONFIGS / fixture).read_bytes())
    assert message in str(exc.value)


def test_text_config_wrapper_and_defaults():
    inner = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    wrapped = from_config({"model_type": "llava", "text_config": inner})
    assert wrapped.total_params == model("meta-llama/Llama-3.1-8B-Instruct").total_params
    no_kv = dict(inner)
    del no_kv["num_key_value_heads"]
    assert from_config(no_kv).kv_heads == 32  # transformers' default: MHA


def test_moe_without_experts_per_token_is_rejected():
    cfg = json.loads((CONFIGS / "mixtral-8x7b.json").read_text())
    del cfg["num_experts_per_tok"]
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        from_config(cfg)


def test_unknown_model_and_unreadable_path():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(ValueError, match="cannot read config file"):
        load_model("/nonexistent/config.json")


_keys = ["num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
         "vocab_size", "head_dim", "max_position_embeddings", "num_local_experts", "num_experts_per_tok",
         "tie_word_embeddings", "model_type"]
_values = st.one_of(st.integers(-4, 70000), st.floats(allow_nan=True), st.text(max_size=4), st.none(),
                    st.booleans(), st.lists(st.integers(), max_size=2))


@FUZZ
@given(st.dictionaries(st.sampled_from(_keys), _values))
def test_fuzz_from_config_returns_arch_or_value_error(cfg):
    try:
        arch = from_config(cfg)
    except ValueError as exc:
        assert str(exc).startswith("config.json")
        return
    assert isinstance(arch, ModelArch)
    assert arch.total_params > 0 and 0 < arch.active_params <= arch.total_params
    assert arch.attention_heads % arch.kv_heads == 0
