"""Untrusted scenario and config.json files: the four inputs of issue 9 that escaped as tracebacks (a TOML
nested 100,000 deep, a 400-digit integer, a 50 MB file, a UTF-8 BOM) and their neighbours, through the
library, both CLIs and the pages' uploads. Every failure is one line naming the file; exit 2 on the CLIs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from calculators import cli_capacity, cli_cost, filelimits, modelspec, scenario
from calculators.filelimits import MAX_CONFIG_BYTES, MAX_SCENARIO_BYTES, FileLimitError, parse_json
from calculators.scenario import DEFAULT_SCENARIO, ScenarioError, dumps_toml, load_toml, loads_toml
from calculators.validation import require_finite
from tests.strategies import FUZZ

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "fixtures" / "configs"
GOOD_TOML = dumps_toml(DEFAULT_SCENARIO)
GOOD_CONFIG = (CONFIGS / "llama-3.1-8b.json").read_text(encoding="utf-8")
DEEP_TOML = "a = " + "[" * 100_000
BIG_INT = "1" + "0" * 399  # 400 digits


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _no_parser(monkeypatch) -> None:
    """Refused by size means refused before any parsing: the parsers fail the test if they are reached."""
    def boom(*_a, **_k):
        raise AssertionError("the parser was called on an oversized file")
    monkeypatch.setattr(scenario.tomllib, "loads", boom)
    monkeypatch.setattr(filelimits.json, "loads", boom)


# --- scenario TOML -------------------------------------------------------------------------------------------

def test_toml_nested_100000_deep_is_a_scenario_error_not_recursion():
    with pytest.raises(ScenarioError, match="nested deeper than 32 levels"):
        loads_toml(DEEP_TOML)
    with pytest.raises(ScenarioError, match="nested deeper than 32 levels"):  # under the recursion limit too
        loads_toml("[traffic]\nrequests_per_day = " + "[" * 40 + "1" + "]" * 40)


def test_toml_400_digit_integer_names_the_field():
    text = GOOD_TOML.replace("requests_per_day = 20000\n", f"requests_per_day = {BIG_INT}\n")
    with pytest.raises(ScenarioError, match=r"400-digit number at traffic\.requests_per_day"):
        loads_toml(text)
    with pytest.raises(ScenarioError, match="over 4,300 digits"):  # past Python's own int() limit
        loads_toml(GOOD_TOML.replace("requests_per_day = 20000\n", "requests_per_day = " + "9" * 5000 + "\n"))
    with pytest.raises(ValueError, match="must be a finite number, got a 401-digit number"):
        require_finite("x", 10**400)  # a value built in code: ValueError, not OverflowError


def test_50_mb_scenario_file_is_refused_by_size_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "big.toml"
    path.write_text(GOOD_TOML + "# " + "x" * (50 * 2**20) + "\n", encoding="utf-8")
    _no_parser(monkeypatch)
    with pytest.raises(ScenarioError, match=r"big\.toml' is 50\.0 MiB, over the 256 KiB limit"):
        load_toml(path)
    with pytest.raises(ScenarioError, match="over the 256 KiB limit"):  # an upload's bytes
        loads_toml(b"#" * (MAX_SCENARIO_BYTES + 1))
    with pytest.raises(ScenarioError, match="over the 256 KiB limit"):  # 4-byte characters count as bytes
        loads_toml("#" + "\U0001F600" * (MAX_SCENARIO_BYTES // 4 + 1))


def test_a_file_just_under_the_limit_still_loads():
    text = GOOD_TOML + "#" * (MAX_SCENARIO_BYTES - len(GOOD_TOML.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_SCENARIO_BYTES
    assert loads_toml(text.encode()) == DEFAULT_SCENARIO


def test_utf8_bom_is_tolerated_and_other_encodings_are_named(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_TOML.encode())
    assert load_toml(path) == DEFAULT_SCENARIO
    assert loads_toml("\ufeff" + GOOD_TOML) == DEFAULT_SCENARIO
    with pytest.raises(ScenarioError, match="is UTF-16 text; save it as UTF-8"):
        loads_toml(GOOD_TOML.encode("utf-16"))
    with pytest.raises(ScenarioError, match=r"not UTF-8 text \(byte 0xe9 at offset 11\)"):
        loads_toml(b'name = "caf\xe9"\n')


def test_huge_unknown_key_is_shown_short():
    with pytest.raises(ScenarioError) as exc:
        loads_toml("k" * 100_000 + " = 1\n")
    assert len(str(exc.value)) < 200


# --- the evaluate CLI ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (DEEP_TOML, "nested deeper than 32 levels"),
    (GOOD_TOML.replace("requests_per_day = 20000\n", f"requests_per_day = {BIG_INT}\n"), "400-digit number"),
    (b"\xff\xfe" + GOOD_TOML.encode("utf-16-le"), "UTF-16"),
    ("#" * (MAX_SCENARIO_BYTES + 1), "over the 256 KiB limit"),
])
def test_evaluate_cli_bad_files_exit_2_with_one_line_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli_cost.main(["evaluate", str(path)]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert out == "" and str(path) in line and message in line, line


def test_evaluate_cli_bom_file_and_bom_stdin_work(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_TOML.encode())
    assert cli_cost.main(["evaluate", str(path)]) == 0
    first = json.loads(capsys.readouterr().out)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + GOOD_TOML.encode())))
    assert cli_cost.main(["evaluate", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == first


def test_evaluate_cli_reads_at_most_the_limit_from_stdin(capsys, monkeypatch):
    stream = io.BytesIO(b"#" * (50 * 2**20))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(stream))
    assert cli_cost.main(["evaluate", "-"]) == 2
    assert "stdin is over the 256 KiB limit" in _one_line(capsys.readouterr().err)
    assert stream.tell() <= MAX_SCENARIO_BYTES + 1 + io.DEFAULT_BUFFER_SIZE


# --- config.json ---------------------------------------------------------------------------------------------

def test_config_400_digit_integer_is_a_value_error_naming_the_key():
    text = GOOD_CONFIG.replace('"hidden_size": 4096', f'"hidden_size": {BIG_INT}')
    assert text != GOOD_CONFIG
    with pytest.raises(ValueError, match="400-digit number at hidden_size"):
        modelspec.from_config_text(text)
    with pytest.raises(ValueError, match="hidden_size must be <= 2,147,483,647"):  # within 64 bits, not a model
        modelspec.from_config_text(GOOD_CONFIG.replace('"hidden_size": 4096', '"hidden_size": 10000000000'))
    with pytest.raises(ValueError, match="hidden_size must be <= 2,147,483,647, got a 400-digit number"):
        modelspec.from_config({**json.loads(GOOD_CONFIG), "hidden_size": 10**399})  # from code: no OverflowError
    with pytest.raises(ValueError, match="out of range"):
        parse_json('{"rope_theta": 1e400}', limit=MAX_CONFIG_BYTES, what="config.json")
    with pytest.raises(ValueError, match="NaN and Infinity are refused"):
        parse_json('{"rope_theta": NaN}', limit=MAX_CONFIG_BYTES, what="config.json")


def test_config_nested_100000_deep_and_bom_and_size(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="config.json is nested deeper than 32 levels"):
        modelspec.from_config_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert modelspec.from_config_text(b"\xef\xbb\xbf" + GOOD_CONFIG.encode()) == modelspec.from_config_text(
        GOOD_CONFIG)
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_CONFIG.encode())
    assert modelspec.load_model(str(path)).total_params == modelspec.model("meta-llama/Llama-3.1-8B-Instruct").total_params
    big = tmp_path / "big" / "config.json"
    big.parent.mkdir()
    big.write_bytes(b" " * (50 * 2**20))
    _no_parser(monkeypatch)
    with pytest.raises(ValueError, match=r"is 50\.0 MiB, over the 4\.0 MiB limit"):
        modelspec.load_model(str(big))
    with pytest.raises(FileLimitError, match="over the 4.0 MiB limit"):
        parse_json(b" " * (MAX_CONFIG_BYTES + 1), limit=MAX_CONFIG_BYTES, what="config.json")


@pytest.mark.parametrize(("content", "message"), [
    ('{"a": ' + "[" * 100_000, "nested deeper than 32 levels"),
    (GOOD_CONFIG.replace('"hidden_size": 4096', f'"hidden_size": {BIG_INT}'), "400-digit number at hidden_size"),
    (" " * (MAX_CONFIG_BYTES + 1), "over the 4.0 MiB limit"),
    (b"{\xff}", "not UTF-8 text"),
])
def test_fit_cli_bad_config_exits_2_with_one_line_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli_capacity.main(["fit", "--model", str(path), "--gpu", "h100-sxm"]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert out == "" and str(path) in line and message in line, line


# --- the pages' uploads --------------------------------------------------------------------------------------

def _home() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()


def test_scenario_upload_with_bom_loads_and_a_deep_one_is_a_clear_error():
    at = _home()
    at.file_uploader(key="scn_upload").set_value(("deep.toml", DEEP_TOML.encode(), "text/plain"))
    at.run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "deep.toml was not loaded: the file is nested deeper than 32 levels of arrays/objects"]
    assert at.session_state["scenario"] == DEFAULT_SCENARIO
    changed = DEFAULT_SCENARIO.__class__(**{**DEFAULT_SCENARIO.__dict__, "name": "from a BOM file"})
    at.file_uploader(key="scn_upload").set_value(
        ("bom.toml", b"\xef\xbb\xbf" + dumps_toml(changed).encode(), "text/plain"))
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["scenario"] == changed


def test_capacity_upload_of_a_400_digit_config_is_a_clear_error():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/2_Capacity.py").run()
    at.radio(key="cap_source").set_value("Upload config.json").run()  # live page: the uploader appears at once
    at.file_uploader(key="cap_upload").set_value(
        ("my-model.json", GOOD_CONFIG.replace('"hidden_size": 4096', f'"hidden_size": {BIG_INT}').encode(),
         "application/json"))
    at.run()
    assert not at.exception, at.exception
    assert any("my-model.json: a 400-digit number at hidden_size" in e.value for e in at.error), [
        e.value for e in at.error]


def test_upload_caps_server_and_browser():
    import tomllib

    from probes.results.schema import MAX_IMPORT_BYTES

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["server"]
    assert server["maxUploadSize"] * 2**20 == MAX_IMPORT_BYTES  # the largest of our limits, refused as it streams
    at = _home()
    scn_mib = at.file_uploader(key="scn_upload").proto.max_upload_size_mb
    assert MAX_SCENARIO_BYTES <= scn_mib * 2**20 < MAX_SCENARIO_BYTES + 2**20  # the smallest whole MiB above it
    at.switch_page("app_pages/2_Capacity.py").run()
    at.radio(key="cap_source").set_value("Upload config.json").run()
    assert at.file_uploader(key="cap_upload").proto.max_upload_size_mb * 2**20 == MAX_CONFIG_BYTES


# --- any bytes: a Scenario/ModelArch or one line of ValueError, never another exception ----------------------

_fragments = st.sampled_from([
    "[", "]", "{", "}", "[traffic]\n", "[self_host]\n", "[api]\n", "requests_per_day = ", "a.b.c = ",
    "9" * 30, "1e400", "nan", "inf", '"', "'''", '"""', "\n", ",", "=", "\ufeff", "#", "\\u0000",
    '"hidden_size": ', '"num_hidden_layers": ', '"text_config": ', "-", "0", "true", ":",
])
_texts = st.lists(_fragments, max_size=60).map("".join)
_bytes = st.one_of(_texts.map(str.encode), st.binary(max_size=200),
                   st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"]), _texts.map(str.encode))
                   .map(lambda t: t[0] + t[1]))


@FUZZ
@given(_bytes)
def test_fuzz_any_scenario_bytes_load_or_fail_in_one_line(data):
    try:
        loads_toml(data)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)


@FUZZ
@given(_bytes)
def test_fuzz_any_config_bytes_parse_or_fail_in_one_line(data):
    try:
        modelspec.from_config_text(data)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)


def test_probe_synthetic_config_json_limits(tmp_path):
    from probes.target.synthetic import write_model_dir

    config = {**json.loads(GOOD_CONFIG), "architectures": ["LlamaForCausalLM"]}
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(config).encode())
    out = write_model_dir(path, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["vocab_size"] == config["vocab_size"]
    for content, message in [('{"a": ' + "[" * 100_000, "nested deeper than 32 levels"),
                             (" " * (MAX_CONFIG_BYTES + 1), "over the 4.0 MiB limit")]:
        path.write_text(content)
        with pytest.raises(ValueError, match=message):
            write_model_dir(path, tmp_path / "out2")


def test_probe_vocab_size_from_a_local_config_json(tmp_path):
    from probes.target.synthetic import read_vocab_size

    (tmp_path / "config.json").write_bytes(b"\xef\xbb\xbf" + GOOD_CONFIG.encode())
    assert read_vocab_size(tmp_path) == json.loads(GOOD_CONFIG)["vocab_size"]
    (tmp_path / "config.json").write_text('{"a": ' + "[" * 100_000)
    assert read_vocab_size(tmp_path) is None  # unknown, as its docstring says; not a RecursionError
