"""Model catalog and config.json parsing: params vs published sizes, fixtures, bad configs, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.modelspec import (
    SUPPORTED_MODEL_TYPES,
    ModelArch,
    from_config,
    from_config_text,
    load_model,
    model,
    models,
    published_active_params_b,
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
         "tie_word_embeddings", "model_type", "n_routed_experts", "moe_intermediate_size", "n_shared_experts",
         "shared_expert_intermediate_size", "first_k_dense_replace", "decoder_sparse_step", "kv_lora_rank",
         "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "sliding_window", "layer_types",
         "use_sliding_window", "sliding_window_pattern", "foo_experts"]
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


# --- architectures beyond dense Llama (issue 9 item 2) -------------------------------------------------------------

# transformers 5.19 on the meta device (benchmarks/count_params_transformers.py; tests/fixtures/configs/README.md)
TRANSFORMERS_TOTALS = {
    "deepseek-v2-lite-chat.json": 15_706_484_224, "qwen1.5-moe-a2.7b.json": 14_315_784_192,
    "deepseek-v3.json": 671_026_404_352, "kimi-k2-instruct-trimmed.json": 1_026_408_209_408,
    "gemma-3-1b-it.json": 999_885_952, "mistral-7b-v0.1.json": 7_241_732_096, "mixtral-8x7b.json": 46_702_792_704,
    "gemma-2-9b.json": 9_241_705_984, "llama-3.1-8b.json": 8_030_261_248, "qwen2.5-7b.json": 7_615_616_512,
    "phi3-style.json": 14_659_507_200,
}
TRANSFORMERS_ROUTED = {
    "deepseek-v2-lite-chat.json": 14_394_851_328, "qwen1.5-moe-a2.7b.json": 12_457_082_880,
    "deepseek-v3.json": 653_908_770_816, "kimi-k2-instruct-trimmed.json": 1_014_686_023_680,
    "mixtral-8x7b.json": 45_097_156_608,
}


@pytest.mark.parametrize("fixture", list(TRANSFORMERS_TOTALS))
def test_real_configs_parse_and_match_transformers_parameter_counts(fixture):
    arch = load_model(str(CONFIGS / fixture))
    assert arch.total_params == TRANSFORMERS_TOTALS[fixture]
    assert arch.expert_params == TRANSFORMERS_ROUTED.get(fixture, 0)


def test_deepseek_v2_lite_is_mla_and_moe_with_its_safetensors_count():
    ds = load_model(str(CONFIGS / "deepseek-v2-lite-chat.json"))
    assert ds.total_params == 15_706_484_224  # the checkpoint's safetensors listing (README)
    assert (ds.is_mla, ds.is_moe, ds.dense_mlp_layers, ds.moe_layers) == (True, True, 1, 26)
    assert (ds.num_experts, ds.experts_per_token, ds.expert_width, ds.shared_expert_intermediate_size) == (
        64, 6, 1408, 2 * 1408)
    assert ds.kv_elements_per_token() == 27 * (512 + 64)  # one latent per layer, no separate V
    assert ds.head_dim == 192  # the config's "head_dim": 64 (transformers 5 re-serialisation) is not the cache's
    # published "2.4B active": the active parameters less the input-embedding lookup (102400 x 2048)
    assert (ds.active_params - 102_400 * 2048) / 1e9 == pytest.approx(2.4, rel=0.03)


def test_qwen_moe_keeps_its_shared_expert():
    q = load_model(str(CONFIGS / "qwen1.5-moe-a2.7b.json"))
    assert q.total_params / 1e9 == pytest.approx(14.3, rel=0.005)
    assert q.active_params / 1e9 == pytest.approx(2.7, rel=0.005)  # was 1.9B without the shared expert
    assert q.shared_expert_gate and q.shared_expert_params_per_layer == 3 * 2048 * 5632 + 2048
    assert q.sliding_window_layers == 0  # use_sliding_window false


def test_qwen_moe_shrunk_matches_the_torch_summary_in_the_source_note():
    # 3 layers, 4 experts, vocab 1519: "86,003,712" per decoder layer, "Total params: 264,235,008"
    cfg = json.loads((CONFIGS / "qwen1.5-moe-a2.7b.json").read_text())
    small = from_config({**cfg, "num_hidden_layers": 3, "num_experts": 4, "vocab_size": 1519})
    per_layer = small.attention_params_per_layer + small.mlp_params_per_layer + small.norm_params_per_layer
    assert (per_layer, small.total_params) == (86_003_712, 264_235_008)


def test_deepseek_v3_and_kimi_k2_totals_and_active():
    v3 = load_model(str(CONFIGS / "deepseek-v3.json"))
    assert v3.total_params / 1e9 == pytest.approx(671, rel=0.001) and v3.dense_mlp_layers == 3
    assert v3.active_params / 1e9 == pytest.approx(37, rel=0.02)
    k2 = load_model(str(CONFIGS / "kimi-k2-instruct-trimmed.json"))
    assert k2.total_params / 1e12 == pytest.approx(1.03, rel=0.01)  # "1T total"
    assert k2.active_params / 1e9 == pytest.approx(32, rel=0.04)  # "32B activated"


def test_mixtral_unchanged():
    mx = load_model(str(CONFIGS / "mixtral-8x7b.json"))
    assert (round(mx.total_params / 1e9, 1), round(mx.active_params / 1e9, 1)) == (46.7, 12.9)


@pytest.mark.parametrize("model_id", list(published_active_params_b()))
def test_catalog_active_params_match_published(model_id):
    m = models()[model_id]
    active = m.active_params - (m.vocab_size * m.hidden_size if m.is_mla else 0)  # DeepSeek counts no lookup
    assert active / 1e9 == pytest.approx(published_active_params_b()[model_id], rel=0.03)


def test_sliding_window_layer_patterns():
    g2 = model("google/gemma-2-9b-it")
    assert (g2.sliding_window, g2.sliding_window_layers, g2.full_attention_layers) == (4096, 21, 21)
    g3 = load_model(str(CONFIGS / "gemma-3-1b-it.json"))
    assert (g3.sliding_window, g3.sliding_window_layers) == (512, 22)  # full at layers 5, 11, 17, 23
    m = load_model(str(CONFIGS / "mistral-7b-v0.1.json"))
    assert (m.sliding_window, m.sliding_window_layers) == (4096, 32)
    cfg = json.loads((CONFIGS / "gemma-3-1b-it.json").read_text())
    types = ["full_attention" if i % 3 == 0 else "sliding_attention" for i in range(26)]
    assert from_config({**cfg, "layer_types": types}).sliding_window_layers == 17  # layer_types win
    qwen = json.loads((CONFIGS / "qwen1.5-moe-a2.7b.json").read_text())
    assert from_config({**qwen, "use_sliding_window": True}).sliding_window_layers == 24 - 21  # max_window_layers


def test_moe_dense_layer_keys():
    cfg = json.loads((CONFIGS / "qwen1.5-moe-a2.7b.json").read_text())
    assert from_config({**cfg, "decoder_sparse_step": 2}).moe_layers == 12
    assert from_config({**cfg, "mlp_only_layers": [0, 1, 2]}).dense_mlp_layers == 3
    ds = json.loads((CONFIGS / "deepseek-v2-lite-chat.json").read_text())
    assert from_config({**ds, "first_k_dense_replace": 3, "moe_layer_freq": 2}).moe_layers == 12  # 4, 6, ..., 26


@pytest.mark.parametrize(("change", "message"), [
    ({"foo_experts": 4, "bar_window": 9},
     "config.json: unknown keys that change the math: 'bar_window', 'foo_experts'; supported architectures: llama"),
    ({"model_type": "jamba"}, "config.json: model_type 'jamba' is not modelled; supported architectures: llama"),
    ({"model_type": None}, "config.json: model_type is missing; supported architectures: llama"),
    ({"mlp_bias": True}, "config.json: mlp_bias True is not modelled (only false)"),
    ({"use_bidirectional_attention": True}, "config.json: use_bidirectional_attention True is not modelled"),
    ({"layer_types": ["sliding_attention"] * 3, "sliding_window": 8}, "config.json: layer_types must list"),
    ({"num_local_experts": 8}, "config.json: num_experts_per_tok must be a whole number"),
])
def test_configs_the_parser_does_not_fully_understand_are_refused_by_name(change, message):
    cfg = {**json.loads((CONFIGS / "llama-3.1-8b.json").read_text()), **change}
    with pytest.raises(ValueError) as exc:
        from_config(cfg)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_unknown_wrapper_and_unknown_inner_keys_are_refused():
    inner = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    with pytest.raises(ValueError, match="model_type 'whisper' is not modelled"):
        from_config({"model_type": "whisper", "text_config": inner})
    with pytest.raises(ValueError, match="unknown keys that change the math: 'audio_experts'"):
        from_config({"model_type": "llava", "text_config": inner, "audio_experts": 3})
    with pytest.raises(ValueError, match="unknown keys that change the math: 'linear_num_key_heads'"):
        from_config({"model_type": "llava", "text_config": {**inner, "linear_num_key_heads": 4}})
    with pytest.raises(ValueError, match="vision_config: the vision tower's weights are not modelled"):
        from_config({"model_type": "gemma3", "text_config": inner, "vision_config": {"hidden_size": 1152}})


def test_every_supported_type_has_a_description():
    assert all(SUPPORTED_MODEL_TYPES.values())
    for arch in models().values():
        assert arch.model_type in SUPPORTED_MODEL_TYPES


def test_cli_refuses_an_unknown_config_with_one_line_and_exit_2(capsys, tmp_path):
    from calculators.__main__ import main as dispatch  # noqa: PLC0415 - the CLI the user runs

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads((CONFIGS / "llama-3.1-8b.json").read_text()), "foo_experts": 4}))
    rc = dispatch(["fit", "--model", str(path), "--gpu", "l4"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "unknown keys that change the math: 'foo_experts'" in err


def test_probe_synthetic_models_do_not_stand_in_a_llama_for_mla_or_shared_expert_moe():
    from probes.target.synthetic import resolve_arch  # noqa: PLC0415 - the probe's use of this catalog

    for model_id in ("deepseek-ai/DeepSeek-V2-Lite-Chat", "Qwen/Qwen1.5-MoE-A2.7B-Chat", "deepseek-ai/DeepSeek-V3"):
        with pytest.raises(ValueError, match="or a path to a config.json"):
            resolve_arch(model_id)
    assert resolve_arch("mistralai/Mixtral-8x7B-Instruct-v0.1").architecture == "MixtralForCausalLM"


def test_config_file_ids_name_the_model(tmp_path):
    assert load_model(str(CONFIGS / "deepseek-v2-lite-chat.json")).id == "deepseek-v2-lite-chat"
    (tmp_path / "Mixtral-8x7B").mkdir()
    (tmp_path / "Mixtral-8x7B" / "config.json").write_bytes((CONFIGS / "mixtral-8x7b.json").read_bytes())
    assert load_model(str(tmp_path / "Mixtral-8x7B" / "config.json")).id == "Mixtral-8x7B"
