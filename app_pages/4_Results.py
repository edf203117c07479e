"""Results page: every stored probe run and the bundled reference measurements, compared side by side and one at
a time in detail.

Thin page (keys ``res_``, the comparison's ``cmp_``): the runs of the results store
(``probes.results.store.open_store``: a SQLite file, or a PostgreSQL database shared by many GPU boxes, from
``APP__PROBE__DB``), filtered by host, GPU kind, model and date and listed one page at a time (the store's indexed
queries, then the listed runs' JSON without samples, for their request shapes; the filters live in the URL,
``res_host``/``res_gpu``/``res_model`` repeatable, ``res_since``/``res_until``), and the reference runs shipped
under ``benchmarks/results/**/probe-*.json`` (``probes.results.reference``; their ``vllm bench serve`` files shown
side by side; listed when no filter is set). The compact table (GPU, model, request shape, best tok/s, date,
host) and the comparison (throughput per GPU and TTFT/TPOT against concurrency, one line per run, preset to the
runs on the scenario's GPU, never a CPU run) are ``ui.compare_view``; one run picked -> ``ui.results_view.show_run``.
Import (a run JSON or a ``vllm bench serve --save-result`` file), export and delete (stored runs only) run in
widget callbacks and report through one message. Works with no GPU and an empty store; a store that cannot be
opened (a wrong password, a server down) is one line naming the host, never the password.
"""

from pathlib import Path

import streamlit as st

from probes.errors import StoreError
from probes.results import compare, reference
from probes.results.store import ResultStore, open_store
from probes.settings import load_settings
from ui import compare_view, results_view, state

st.set_page_config(page_title="Results · Self-host or API?", page_icon="📊", layout="wide")

MESSAGE_KEY = "res_message"
SELECT_KEY = "res_run"
PAGE_KEY = "res_page"
PAGE_SIZES = (25, 50, 100, 200)


@st.cache_data(ttl=600, max_entries=1, show_spinner=False)
def _references() -> list[dict]:
    """The bundled reference runs: key, name, label, paths (runs whose file is unreadable are skipped)."""
    out = []
    for ref in reference.discover():
        try:
            run = reference.load_run(ref.path)
        except ValueError:
            continue
        out.append({"key": ref.key, "name": ref.name, "label": reference.reference_label(run),
                    "path": str(ref.path), "bench": tuple(str(p) for p in ref.bench_paths), "model": run.get("model"),
                    "points": len(run["points"]), "best": (run.get("best_point") or {}).get("output_tokens_per_s"),
                    "info": compare.run_info(f"ref:{ref.key}", run)})
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def _reference_run(path: str) -> dict:
    return reference.load_run(path)


@st.cache_data(max_entries=8, show_spinner=False)
def _reference_bench(paths: tuple[str, ...]) -> dict | None:
    return reference.load_bench(paths)


def _open_store(settings) -> ResultStore | None:
    try:
        return open_store(settings.db_path, hostname=settings.hostname)
    except (ValueError, OSError, StoreError) as exc:
        st.error(f"The results store cannot be opened: {exc}. Reference runs are still shown.")
        return None


def _import(store: ResultStore) -> None:
    """File-uploader callback: a run JSON (our schema) or a ``vllm bench serve --save-result`` file."""
    f = st.session_state.get("res_import")
    if f is None:
        return
    try:  # the store checks untrusted files (size, depth, strict JSON, types) and tells the formats apart
        rid, kind = store.import_any(f.getvalue(), label=Path(f.name).stem)
    except (ValueError, StoreError) as exc:
        st.session_state[MESSAGE_KEY] = ("error", f"{f.name} was not imported: {exc}")
        return
    st.session_state[SELECT_KEY] = f"store:{rid}"
    st.session_state[MESSAGE_KEY] = ("success", f"Imported {f.name} ({kind}) as run {rid}.")


def _delete(store: ResultStore, rid: int) -> None:
    try:
        store.delete_run(rid)
    except (ValueError, StoreError) as exc:
        st.session_state[MESSAGE_KEY] = ("error", f"Run {rid} was not deleted: {exc}")
    else:
        st.session_state[MESSAGE_KEY] = ("success", f"Deleted run {rid}.")
        st.session_state.pop(SELECT_KEY, None)


def _compare_runs(store: ResultStore | None, keys: list[str]) -> list[tuple[str, dict]]:
    """The picked runs that exist, without samples (stored runs in one query; any reference run)."""
    ids = [int(k.removeprefix("store:")) for k in keys if k.startswith("store:")]
    try:
        found = store.get_runs_bare(ids) if store is not None and ids else {}
    except StoreError as exc:
        st.error(f"The results store cannot be read: {exc}")
        found = {}
    paths = {f"ref:{r['key']}": r["path"] for r in _references()}
    return [(k, found[int(k.removeprefix("store:"))]) if k.startswith("store:") else (k, _reference_run(paths[k]))
            for k in keys if (k.startswith("store:") and int(k.removeprefix("store:")) in found) or k in paths]


def _filter_widget(column, label: str, key: str, options: list[str]) -> list[str]:
    """A multiselect of the values there are; a remembered choice that no longer exists is dropped first."""
    st.session_state[key] = [v for v in st.session_state.get(key, []) if v in options]
    return column.multiselect(label, options, key=key, placeholder="all")


scenario = state.get_scenario()  # keep the scenario (and its URL) across page switches
st.title("Results")
st.caption("Probe runs in the results store (this machine's file, or a database shared by many GPU boxes) and "
           "reference measurements shipped with the app. Pick one to see its points; any point can become the "
           "break-even's self-host throughput.")
try:
    settings = load_settings()
except ValueError as exc:
    st.error(f"Probe settings: {exc}")
    st.stop()
store = _open_store(settings)

with st.sidebar:
    if store is not None:
        st.file_uploader("Import a run JSON or a `vllm bench serve --save-result` file", type=["json", "jsonl"],
                         key="res_import", on_change=_import, args=(store,))
        st.caption(f"Store: {store.location}")  # redacted: never the password
message = st.session_state.pop(MESSAGE_KEY, None)
if message is not None:
    (st.error if message[0] == "error" else st.success)(message[1])

if "res_f_seeded" not in st.session_state:  # a shared link's filters, once per session (then the widgets own them)
    st.session_state.update(results_view.filter_state_from_params(
        {q: st.query_params.get_all(q) for q in ("res_host", "res_gpu", "res_model", "res_since", "res_until")}))
    st.session_state["res_f_seeded"] = True

stored: list[dict] = []
bare: dict[int, dict] = {}
total = 0
filters = results_view.run_filter()
if store is not None:
    try:
        facets = store.facets()
        c = st.columns([2, 2, 2, 2])
        filters = results_view.run_filter(
            _filter_widget(c[0], "Host", "res_f_hosts", facets["hosts"]),
            _filter_widget(c[1], "GPU kind", "res_f_gpus", facets["gpus"]),
            _filter_widget(c[2], "Model", "res_f_models", facets["models"]),
            c[3].date_input("Created (UTC)", value=(), key="res_f_dates", format="YYYY-MM-DD"))
        total = store.count_runs(filters)
        size = st.session_state.get("res_page_size", PAGE_SIZES[1])
        pages = results_view.page_count(total, size)
        if st.session_state.get(PAGE_KEY, 1) > pages:
            st.session_state[PAGE_KEY] = 1
        page = int(st.session_state.get(PAGE_KEY, 1))
        stored = store.list_runs(filters, limit=size, offset=(page - 1) * size)
        bare = store.get_runs_bare(r["id"] for r in stored)  # the request shapes (no samples read)
    except StoreError as exc:
        st.error(f"The results store cannot be read: {exc}. Reference runs are still shown.")
        store = None
filtered = filters != results_view.run_filter()
for name, values in results_view.filter_params(filters).items() if store is not None else ():
    if values and st.query_params.get_all(name) != values:  # the filters go in the URL: a shareable view
        st.query_params[name] = values
    elif not values and name in st.query_params:
        del st.query_params[name]
refs = [] if filtered else _references()

infos = {f"store:{r['id']}": compare.run_info(  # the listing's own columns if the run went meanwhile
    f"store:{r['id']}", bare.get(r["id"]) or {"model": r["model"], "gpu": {"name": r["gpu_name"]},
                                              "created_at": r["created_at"]}, host=r.get("host")) for r in stored}
infos |= {f"ref:{r['key']}": r["info"] for r in refs}
table = [compare.table_row(infos[f"store:{r['id']}"], best_output_tokens_per_s=r["best_output_tokens_per_s"],
                           status=r["status"]) for r in stored]
table += [compare.table_row(r["info"], best_output_tokens_per_s=r["best"]) for r in refs]
if not table:
    st.info("No run matches these filters." if filtered else
            "No runs yet: start one on the Probe page, or import a file in the sidebar.")
    st.stop()
compare_view.show_table(table)
if store is not None and total:
    c = st.columns([1, 1, 4])
    c[0].number_input("Page", min_value=1, max_value=results_view.page_count(total, size), step=1, key=PAGE_KEY)
    c[1].selectbox("Runs per page", PAGE_SIZES, key="res_page_size")
    c[2].caption(f"Stored runs {(page - 1) * size + 1:,}-{(page - 1) * size + len(stored):,} of {total:,}"
                 + (" matching the filters" if filtered else "") + ", newest first.")

st.subheader("Compare runs")
compare_view.show_compare(
    compare.unique_labels(infos.values()), lambda keys: _compare_runs(store, keys),
    default=compare.preselect(infos.values(), gpu_id=scenario.self_host.gpu,
                              model=getattr(scenario.self_host, "throughput_model", "") or None))
st.subheader("One run in detail")

labels = {f"store:{r['id']}": f"run {r['id']} · {r['host'] or 'host ?'} · {r['model']} · {r['gpu'] or 'no GPU'} · "
          f"{r['status']} · {r['created_at']}" for r in stored}
labels |= {f"ref:{r['key']}": f"{r['name']} · {r['label']}" for r in refs}
options = list(labels)
if st.session_state.get(SELECT_KEY) not in labels:
    st.session_state[SELECT_KEY] = options[0]
choice = st.selectbox("Run", options, key=SELECT_KEY, format_func=labels.get)

if choice.startswith("store:"):
    rid = int(choice.removeprefix("store:"))
    try:
        run, data = store.get_run(rid), store.export_json(rid)
    except (ValueError, StoreError) as exc:
        st.error(f"Run {rid} cannot be read: {exc}")
        st.stop()
    c = st.columns([1, 1, 4])
    c[0].download_button("Export JSON", data=data, file_name=f"probe-run-{rid}.json", mime="application/json",
                         key="res_export", on_click="ignore")
    c[1].button("Delete run", key="res_delete", on_click=_delete, args=(store, rid))
    results_view.show_run(run, key="res_run_view", run_name=f"probe run {rid}", run_id=rid)
else:
    ref = next(r for r in refs if f"ref:{r['key']}" == choice)
    st.info(f"**{ref['label']}** ({ref['name']}): measured on a rented GPU and shipped with the app; "
            "read-only.")
    try:
        run, bench = _reference_run(ref["path"]), _reference_bench(ref["bench"])
    except ValueError as exc:
        st.error(f"Reference run {ref['name']} cannot be read: {exc}")
        st.stop()
    st.download_button("Export JSON", data=Path(ref["path"]).read_bytes(), file_name=Path(ref["path"]).name,
                       mime="application/json", key="res_export", on_click="ignore")
    results_view.show_run(run, key="res_run_view", bench=bench,
                          run_name=f"reference {ref['name']} ({ref['label'].removeprefix('reference: ')})",
                          run_id=ref["key"])
