"""Capacity page: will the model fit, how fast can it be, how to launch vLLM, and the article's claims.

Thin page: sidebar form (keys ``cap_``) -> ``FitInput`` / ``RooflineInput`` -> cached calculators
(``calculators.memory``, ``roofline``, ``launch``, ``claims``) -> Plotly. Bad input (a config.json missing
fields, zero heads, TP not dividing the heads) shows ``st.error`` and stops; never a traceback.
"""

import shlex

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from calculators import catalog, modelspec
from calculators.claims import ARTICLE_CLAIMS, check_claim
from calculators.launch import plan_launch
from calculators.memory import KV_CACHE_DTYPES, VLLM_0_26, WEIGHT_DTYPES, FitInput, fit
from calculators.roofline import DEFAULT_MBU, DEFAULT_MFU, RooflineInput, decode_point, prefill

st.set_page_config(page_title="Capacity · Self-host or API?", page_icon="🧮", layout="wide")

CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@st.cache_data(max_entries=32, show_spinner=False)
def _arch_from_upload(data: bytes, name: str) -> modelspec.ModelArch:
    return modelspec.from_config_text(data, model_id=name, where=f"{name}.json")  # errors name the upload


@st.cache_data(max_entries=64, show_spinner=False)
def _analyse(inp: FitInput, rin: RooflineInput, prompt_tokens: int):
    r = fit(inp)
    plan = plan_launch(inp, r, prompt_tokens=prompt_tokens)
    points = [decode_point(rin, c) for c in CONCURRENCIES]
    return r, plan, points, prefill(rin, prompt_tokens)


@st.cache_data(max_entries=4, show_spinner=False)
def _claims():
    return {k: check_claim(c) for k, c in ARTICLE_CLAIMS.items()}


st.title("Capacity")
st.caption(
    f"Memory fit as vLLM {VLLM_0_26.version} sizes its KV cache at startup, roofline ceilings from memory "
    "bandwidth and compute, and a launch plan. Estimates, not measurements: run the probe to measure."
)

gpu_ids = list(catalog.gpus())
model_ids = list(modelspec.models())
with st.sidebar.form("cap_form"):
    source = st.radio("Model", ["Catalog", "Upload config.json"], key="cap_source", horizontal=True)
    model_id = st.selectbox("Catalog model", model_ids, key="cap_model",
                            index=model_ids.index("meta-llama/Llama-3.3-70B-Instruct"))
    upload = st.file_uploader("config.json", type=["json"], key="cap_upload", max_upload_size=4)  # MiB
    gpu_id = st.selectbox("GPU", gpu_ids, key="cap_gpu", format_func=lambda g: catalog.gpu(g).name)
    n_gpus = st.selectbox("GPUs (tensor parallel)", [1, 2, 4, 8], key="cap_gpus")
    dtype = st.selectbox("Weights", WEIGHT_DTYPES, key="cap_dtype")
    kv_dtype = st.selectbox("KV cache dtype", KV_CACHE_DTYPES, key="cap_kv_dtype")
    max_len = st.number_input("max_model_len", min_value=16, value=4096, step=1024, key="cap_max_len")
    util = st.number_input("gpu_memory_utilization", min_value=0.05, max_value=1.0,
                           value=VLLM_0_26.default_gpu_memory_utilization, step=0.01, key="cap_util")
    concurrency = st.number_input("Concurrency (streams)", min_value=1, value=32, key="cap_concurrency")
    context = st.number_input("Context per stream (tokens)", min_value=0, value=1024, step=256, key="cap_context")
    loras = st.number_input("LoRA slots (--max-loras; 0 = off)", min_value=0, max_value=64, value=0, key="cap_loras")
    lora_rank = st.selectbox("LoRA max rank", [8, 16, 32, 64, 128], index=1, key="cap_lora_rank")
    prompt = st.number_input("Prompt tokens (TTFT)", min_value=1, value=1024, step=256, key="cap_prompt")
    mbu = st.number_input("MBU (bandwidth efficiency)", 0.05, 1.0, DEFAULT_MBU, 0.05, key="cap_mbu")
    mfu = st.number_input("MFU (compute efficiency)", 0.05, 1.0, DEFAULT_MFU, 0.05, key="cap_mfu")
    st.form_submit_button("Analyse", key="cap_submit")

try:
    if source == "Upload config.json":
        if upload is None:
            st.info("Upload a model's config.json in the sidebar (or pick Catalog).")
            st.stop()
        arch = _arch_from_upload(upload.getvalue(), upload.name.removesuffix(".json"))
    else:
        arch = modelspec.model(model_id)
    g = catalog.gpu(gpu_id)
    inp = FitInput(arch, g, int(n_gpus), dtype, kv_dtype, min(int(max_len), arch.max_position_embeddings),
                   float(util), concurrency=int(concurrency), max_loras=int(loras), max_lora_rank=int(lora_rank))
    rin = RooflineInput(arch, g, int(n_gpus), dtype, kv_dtype, int(context), float(mbu), float(mfu))
    r, plan, points, pf = _analyse(inp, rin, int(prompt))
except ValueError as exc:
    st.error(f"Cannot analyse this input: {exc}")
    st.stop()

if int(max_len) > arch.max_position_embeddings:
    st.warning(f"max_model_len capped at the model's limit, {arch.max_position_embeddings:,} tokens.")
label = {"fits": st.success, "short-context": st.warning, "does-not-fit": st.error}[r.verdict]
label(f"**{arch.name}** on {n_gpus} x {g.name}, {dtype} weights: "
      + {"fits": "fits", "short-context": "fits with a short context only", "does-not-fit": "does not fit"}[r.verdict])
cols = st.columns(4)
cols[0].metric("Weights per GPU", f"{r.weights_gib:.1f} GiB")
cols[1].metric("KV cache per GPU", f"{r.kv_cache_gib:.1f} GiB")
cols[2].metric("KV capacity", f"{r.kv_capacity_tokens:,} tokens")
cols[3].metric(f"Sequences of {r.max_model_len:,}", f"{r.max_concurrent_sequences:.1f}")
st.markdown("\n".join(f"- {line}" for line in r.reasons))
if r.fixes:
    st.markdown("**What would fit:**\n" + "\n".join(f"- {f}" for f in r.fixes))

left, right = st.columns(2)
with left:
    st.subheader("Memory per GPU")
    parts = [("weights", r.weights_gib), ("activations", r.activation_gib), ("non-torch", r.non_torch_gib),
             ("KV cache", r.kv_cache_gib), ("headroom (1 - utilization)", max(r.total_gib - r.budget_gib, 0.0))]
    fig = go.Figure([go.Bar(name=n, x=[v], y=["GPU"], orientation="h") for n, v in parts])
    fig.add_vline(x=r.total_gib, line_dash="dash", annotation_text=f"{r.total_gib:g} GiB usable")
    fig.update_layout(barmode="stack", height=260, xaxis_title="GiB", margin=dict(t=30, b=30))
    st.plotly_chart(fig, key="cap_chart_memory")
with right:
    st.subheader("Throughput vs concurrency")
    df = pd.DataFrame([{
        "concurrency": p.concurrency,
        "memory ceiling": p.concurrency / p.step_ms_memory * 1e3,
        "compute ceiling": p.concurrency / p.step_ms_compute * 1e3,
        "roofline": p.decode_tokens_per_s_max,
        "estimate": p.decode_tokens_per_s_est,
        "per-user (roofline)": p.per_user_tokens_per_s_max,
        "per-user (estimate)": p.per_user_tokens_per_s_est,
    } for p in points])
    fig = go.Figure()
    for col, dash in (("memory ceiling", "dot"), ("compute ceiling", "dot"), ("roofline", "solid"), ("estimate", "dash")):
        fig.add_scatter(x=df["concurrency"], y=df[col], name=col, line=dict(dash=dash))
    for col in ("per-user (roofline)", "per-user (estimate)"):
        fig.add_scatter(x=df["concurrency"], y=df[col], name=col, yaxis="y2", line=dict(dash="dashdot"))
    if r.kv_capacity_tokens and context:
        fig.add_vline(x=max(1, r.kv_capacity_tokens / int(context)), line_dash="dash",
                      annotation_text="KV cache full")
    fig.update_layout(xaxis=dict(type="log", title="concurrent streams"), yaxis=dict(type="log", title="tokens/s"),
                      yaxis2=dict(type="log", title="tokens/s per user", overlaying="y", side="right"),
                      height=360, margin=dict(t=30, b=30), legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, key="cap_chart_roofline")
    st.caption(f"Prefill of {pf.prompt_tokens:,} tokens: TTFT >= {pf.ttft_ms_floor:,.0f} ms "
               f"(~{pf.ttft_ms_est:,.0f} ms at {mfu:.0%} MFU), on an idle server.")

resident = max(1, min(int(concurrency), r.kv_capacity_tokens // max(1, int(context)) or 1))
point = decode_point(rin, resident)
st.subheader("Use in the break-even")
st.write(f"Estimate at {resident} concurrent streams ({context:,} tokens of context): "
         f"**{point.decode_tokens_per_s_est:,.0f} output tokens/s** per replica "
         f"(ceiling {point.decode_tokens_per_s_max:,.0f}).")
if st.button("Use this estimate in the break-even", key="cap_use", disabled=not r.fits):
    from ui.state import apply_operating_point

    try:
        apply_operating_point(
            output_tokens_per_s=round(point.decode_tokens_per_s_est, 1),
            source=f"roofline estimate ({arch.name}, {n_gpus}x {gpu_id}, {dtype}, c={resident}, "
                   f"MBU {mbu:.0%}, MFU {mfu:.0%})",
            gpu=gpu_id,
            gpus_per_replica=int(n_gpus),
            # a decode roofline excludes prompt processing: send the prefill estimate too, so the cost model
            # charges each request its prefill time (a measured probe point already includes it)
            prefill_tokens_per_s=round(pf.prefill_tokens_per_s_est, 1),
        )
    except ValueError as exc:
        st.error(f"Not applied: {exc}")
    else:
        st.success("Applied: the Break-even page now uses this decode and prefill throughput (marked as a "
                   "roofline estimate) and this GPU at its catalog low price.")

st.subheader("Launch plan")
st.code(shlex.join(plan.vllm_serve_argv()), language="bash")
st.code(shlex.join(plan.docker_argv()), language="bash")
st.dataframe(pd.DataFrame([{"flag": f.name, "value": f.value or "", "why": f.reason} for f in plan.flags]),
             hide_index=True)
for w in plan.warnings:
    st.warning(w)

st.subheader("The article's claims, checked")
for key, v in _claims().items():
    with st.expander(f"({key}) {v.claim.text} — {'possible' if v.possible else 'not possible'}"):
        st.markdown("\n".join(f"- {line}" for line in v.lines))
