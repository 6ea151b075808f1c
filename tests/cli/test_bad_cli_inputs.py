"""Bad command lines and sweep configurations: each refused in one line, exit 2.

Every case runs the CLI in-process (``main(argv)``, with ``capsys``) and asserts the
contract of a user error: exit status 2, exactly one line on stderr, no traceback,
and the culprit named (the option, or the TOML file with its table and key). Two
cases run a real subprocess, so the installed entry point and ``--debug`` are
covered too. Cases are grouped by kind; the counts are in the closing note.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flatjax.cli import _main as cli_module
from flatjax.cli import main

REPO = Path(__file__).resolve().parents[2]

SWEEP = {
    "problem": '"LeastSquares"',
    "optimizer": '"sam"',
    "seeds": "4",
    "steps": "8",
    "block_size": "4",
}
GRID = {"d": "[4]", "n": "[6]", "learning_rate": "[0.25]", "radius": "[0.05]"}


def toml_text(sweep=None, grid=None, drop=(), extra=""):
    """The base configuration with [sweep]/[grid] values replaced (raw TOML)."""
    tables = {"sweep": {**SWEEP, **(sweep or {})}, "grid": {**GRID, **(grid or {})}}
    lines = []
    for table, entries in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {v}" for k, v in entries.items() if k not in drop]
        lines.append("")
    return "\n".join(lines) + extra


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_refusal(code, out, err, *culprits):
    assert code == 2, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flatjax"), err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


def test_the_base_configuration_is_valid(tmp_path):
    # The bad cases below each change one thing of this one: it must itself pass.
    from flatjax.sweep import SweepConfig

    path = tmp_path / "ok.toml"
    path.write_text(toml_text())
    assert SweepConfig.from_toml(path).seeds == 4


# ---------------------------------------------------------------- command lines

USAGE_CASES = [
    ([], "choose a command"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["--bogus"], "--bogus"),
    (["sweep"], "config, --out"),
    (["sweep", "{cfg}"], "--out"),
    (["sweep", "{cfg}", "--out", "{out}", "--chunk-size", "0"], "--chunk-size"),
    (["sweep", "{cfg}", "--out", "{out}", "--chunk-size", "-3"], "--chunk-size"),
    (["sweep", "{cfg}", "--out", "{out}", "--chunk-size", "ten"], "'ten'"),
    (["sweep", "{cfg}", "--out", "{out}", "--chunk-size", "1.5"], "'1.5'"),
    (["sweep", "{cfg}", "--out", "{out}", "--memory-budget", "0"], "--memory-budget"),
    (["sweep", "{cfg}", "--out", "{out}", "--memory-budget", "1e9"], "'1e9'"),
    (["sweep", "{cfg}", "--out", "{out}", "--memory-budget", "lots"], "'lots'"),
    (["sweep", "{cfg}", "--out", "{out}", "--frobnicate"], "--frobnicate"),
    (["sweep", "{cfg}", "{cfg}", "--out", "{out}"], "unrecognized arguments"),
    (["reproduce", "--only", "theorem9"], "'theorem9' (choose from 'theorem1'"),
    (["reproduce", "--only", "Theorem1"], "'Theorem1'"),
    (["reproduce", "--only"], "--only"),
    (["reproduce", "--seeds", "0"], "--seeds"),
    (["reproduce", "--seeds", "-5"], "--seeds"),
    (["reproduce", "--seeds", "many"], "'many'"),
    (["reproduce", "--quick", "--full"], "--full"),
    (["reproduce", "--out"], "--out"),
    (["sweep", "{cfg}", "--out", ""], "--out must name a folder"),
    (["reproduce", "--out", " "], "--out must name a folder"),
    (["problems", "--seed", "-1"], "--seed"),
    (["problems", "--seed", "x"], "'x'"),
    (["problems", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("argv, culprit", USAGE_CASES)
def test_bad_command_lines(argv, culprit, tmp_path, capsys):
    cfg = tmp_path / "ok.toml"
    cfg.write_text(toml_text())
    argv = [a.format(cfg=cfg, out=tmp_path / "out") for a in argv]
    assert_one_line_refusal(*run_cli(argv, capsys), culprit)


# ------------------------------------------------------------- files and folders


def _directory(tmp_path):
    (tmp_path / "folder.toml").mkdir()
    return tmp_path / "folder.toml"


FILE_CASES = {
    "missing file": (lambda p: p / "missing.toml", "does not exist"),
    "a folder": (_directory, "is a folder"),
    "not UTF-8": (lambda p: _write(p, b"[sweep]\nproblem = '\xff\xfe'\n"), "UTF-8"),
    "not TOML": (lambda p: _write(p, b"[sweep\nproblem="), "not valid TOML"),
    "empty": (lambda p: _write(p, b""), "missing required key 'problem'"),
    "binary": (lambda p: _write(p, bytes(range(256))), "UTF-8"),
}


def _write(folder: Path, payload: bytes) -> Path:
    path = folder / "bad.toml"
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("kind", sorted(FILE_CASES))
def test_unreadable_configuration_files(kind, tmp_path, capsys):
    make, culprit = FILE_CASES[kind]
    path = make(tmp_path)
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, repr(str(path)), culprit)


SWEEP_FOLDER_CASES = {
    "sweep.json not JSON": (b"{not json", "corrupt"),
    "sweep.json not UTF-8": (b"\xff\xfe\x00", "corrupt"),
    "sweep.json a list": (b"[1, 2]", "corrupt"),
    "sweep.json of another sweep": (
        json.dumps({"fingerprint": "0123456789abcdef"}).encode(),
        "holds a different sweep",
    ),
}


@pytest.mark.parametrize("kind", sorted(SWEEP_FOLDER_CASES))
def test_unusable_sweep_output_folders(kind, tmp_path, capsys):
    payload, culprit = SWEEP_FOLDER_CASES[kind]
    cfg = tmp_path / "ok.toml"
    cfg.write_text(toml_text())
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_bytes(payload)
    result = run_cli(["sweep", cfg, "--out", out], capsys)
    assert_one_line_refusal(*result, str(out), culprit)


def test_sweep_output_folder_that_is_a_file(tmp_path, capsys):
    cfg = tmp_path / "ok.toml"
    cfg.write_text(toml_text())
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli(["sweep", cfg, "--out", blocker], capsys)
    assert_one_line_refusal(*result, str(blocker), "not writable")


def test_reproduce_output_folder_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli(["reproduce", "--only", "theorem6", "--out", blocker], capsys)
    assert_one_line_refusal(*result, str(blocker))


def test_reproduce_folder_with_a_corrupt_record(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "reproduce.json").write_text("{oops")
    result = run_cli(["reproduce", "--only", "theorem6", "--out", out], capsys)
    assert_one_line_refusal(*result, "reproduce.json", "corrupt")


# --------------------------------------------------- TOML tables and keys

SCHEMA_CASES = {
    "unknown table": (dict(extra="[sweeps]\nseeds = 2\n"), "[sweeps]", "mean [sweep]?"),
    "unknown table, no near name": (dict(extra="[xyz]\na = 1\n"), "[xyz]", "[grid]"),
    "a value for a table": (dict(extra="[metadata]\n"), "[metadata]", "expected"),
    "unknown key": (dict(sweep={"seedz": "4"}), "[sweep]", "'seedz'"),
    "misspelt key": (dict(sweep={"optimiser": '"sam"'}), "'optimiser'", "'optimizer'"),
    "grid inside [sweep]": (dict(sweep={"grid": "{n = [6]}"}), "[sweep]", "[grid]"),
    "missing problem": (dict(drop=("problem",)), "[sweep]", "'problem'"),
    "missing optimizer": (dict(drop=("optimizer",)), "[sweep]", "'optimizer'"),
    "missing seeds": (dict(drop=("seeds",)), "[sweep]", "'seeds'"),
    "missing steps": (dict(drop=("steps",)), "[sweep] steps", "must be given"),
}


@pytest.mark.parametrize("kind", sorted(SCHEMA_CASES))
def test_unknown_or_missing_tables_and_keys(kind, tmp_path, capsys):
    spec, *culprits = SCHEMA_CASES[kind]
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(**spec))
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, repr(str(path)), *culprits)


def test_a_top_level_value_where_a_table_belongs(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("sweep = 3\n")
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, repr(str(path)), "`sweep` must be a table")


# ----------------------------------------------------------- TOML value types

TYPE_CASES = [
    ("sweep", "conditioned", '"no"', "a boolean"),
    ("sweep", "conditioned", "0", "a boolean"),
    ("sweep", "population", '"true"', "a boolean"),
    ("sweep", "block_size", "true", "an integer"),
    ("sweep", "block_size", "16.0", "an integer"),
    ("sweep", "steps", "2.5", "an integer"),
    ("sweep", "steps", '"8"', "an integer"),
    ("sweep", "seed", '"abc"', "an integer"),
    ("sweep", "seed", "1.0", "an integer"),
    ("sweep", "seeds", "true", "an integer"),
    ("sweep", "seeds", "2.5", "an integer"),
    ("sweep", "problem", "3", "a string"),
    ("sweep", "optimizer", '["sam"]', "a string"),
    ("sweep", "maximizer", "1", "a string"),
    ("sweep", "record", '"final"', "an array of strings"),
    ("sweep", "record", "[1]", "an array of strings"),
    ("sweep", "suffix_starts", "[1.5]", "an array of integers"),
    ("sweep", "suffix_starts", "3", "an array of integers"),
    ("sweep", "curve_every", '"2"', "an integer"),
    ("sweep", "seed", "2026-12-01", "an integer"),
    ("grid", "learning_rate", '"0.1"', "array of numbers"),
    ("grid", "radius", "[true]", "array of numbers"),
    ("grid", "n", "[[6]]", "array of numbers"),
    ("grid", "radius", "{a = 1}", "array of numbers"),
    ("grid", "radius", '[0.1, "0.2"]', "array of numbers"),
    ("grid", "d", "[4.5]", "must be an int"),
    ("grid", "learning_rate", "[nan]", "must be finite"),
    ("grid", "radius", "[inf]", "must be finite"),
]


@pytest.mark.parametrize("table, key, value, culprit", TYPE_CASES)
def test_values_of_the_wrong_type(table, key, value, culprit, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(**{table: {key: value}}))
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, repr(str(path)), f"[{table}] {key}", culprit)


# ---------------------------------------------------------- TOML bad values

VALUE_CASES = [
    ("sweep", "seeds", "0", "[sweep] seeds", ">= 1"),
    ("sweep", "seeds", "-3", "[sweep] seeds", ">= 1"),
    ("sweep", "block_size", "0", "[sweep] block_size", ">= 1"),
    ("sweep", "curve_every", "0", "[sweep] curve_every", ">= 1"),
    ("sweep", "steps", "0", "[sweep] steps", ">= 1"),
    ("sweep", "seed", "-1", "[sweep] seed", ">= 0"),
    ("sweep", "problem", '"LeastSquare"', "[sweep] problem", "'LeastSquares'"),
    ("sweep", "optimizer", '"adamw"', "[sweep] optimizer", "must be one of"),
    ("sweep", "optimizer", '"sa_gd"', "[sweep] maximizer", "exact maximizer"),
    ("sweep", "maximizer", '"adversarial"', "[sweep] maximizer", "'quadratic'"),
    ("sweep", "maximizer", '"quadratik"', "[sweep] maximizer", "'quadratic'?"),
    ("sweep", "record", '["everything"]', "[sweep] record", "subset"),
    ("sweep", "record", "[]", "[sweep] record", "non-empty"),
    ("sweep", "suffix_starts", "[0]", "[sweep] suffix_starts", "[1, steps=8]"),
    ("sweep", "suffix_starts", "[99]", "[sweep] suffix_starts", "[1, steps=8]"),
    ("grid", "radious", "[0.1]", "[grid] radious", "did you mean 'radius'"),
    ("grid", "n", "[]", "[grid] n", "empty"),
    ("grid", "learning_rate", "[-0.1]", "[grid] learning_rate", "sam(learning_rate"),
    ("grid", "radius", "[-1.0]", "[grid] radius", "(radius=...)"),
    ("grid", "n", "[0]", "[grid] n", "LeastSquares(n=...)"),
    ("grid", "d", "[-4]", "[grid] d", "LeastSquares(d=...)"),
    ("grid", "d", "[100000000000]", "[grid]", "LeastSquares"),
]


@pytest.mark.parametrize("table, key, value, location, culprit", VALUE_CASES)
def test_bad_values(table, key, value, location, culprit, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(**{table: {key: value}}))
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, repr(str(path)), location, culprit)


def test_more_seeds_than_memory_holds(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text(toml_text(sweep={"seeds": str(2**63 - 1)}))
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    # Refused by the sweep's pre-flight, before anything is allocated.
    assert_one_line_refusal(*result, "runs per group", "exceed 2,147,483,647")


def test_missing_grid_values(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(drop=("learning_rate",)))
    result = run_cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert_one_line_refusal(*result, "[grid]", "needs values for ['learning_rate']")


# ------------------------------------------------------ errors and their classes


def test_an_internal_error_is_one_line_exit_1_and_shown_with_debug(
    tmp_path, capsys, monkeypatch
):
    def broken(args):
        raise RuntimeError("an invariant broke\nsecond line")

    monkeypatch.setattr(cli_module, "_problems", broken)
    assert main(["problems"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "internal error (RuntimeError: an invariant broke second line)" in err
    assert "--debug" in err
    with pytest.raises(RuntimeError, match="an invariant broke"):
        main(["problems", "--debug"])
    with pytest.raises(RuntimeError, match="an invariant broke"):
        main(["--debug", "problems"])


def test_a_user_error_raises_with_debug(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(sweep={"steps": "2.5"}))
    with pytest.raises(ValueError, match=r"\[sweep\] steps: must be an integer"):
        main(["sweep", str(path), "--out", str(tmp_path / "out"), "--debug"])


def test_out_of_memory_is_a_user_error(capsys, monkeypatch):
    def exhausted(args):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 10GiB")

    monkeypatch.setattr(cli_module, "_problems", exhausted)
    code, out, err = run_cli(["problems"], capsys)
    assert_one_line_refusal(code, out, err, "out of device memory", "--chunk-size")


def test_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "_problems", interrupted)
    assert main(["problems"]) == 130
    assert "interrupted" in capsys.readouterr().err


# ------------------------------------------------------------- real processes


def test_a_real_process_reports_one_line_and_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(sweep={"conditioned": '"no"'}))
    command = [sys.executable, "-m", "flatjax.cli", "sweep", str(path), "--out"]
    command.append(str(tmp_path / "out"))
    plain = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"flatjax sweep: error: sweep config {str(path)!r}, [sweep] conditioned: "
        "must be a boolean (true or false), got 'no' (string)"
    ]
    debug = subprocess.run(
        [*command, "--debug"], cwd=REPO, capture_output=True, text=True
    )
    assert debug.returncode == 1  # Python's own status for an uncaught exception
    assert "Traceback" in debug.stderr and "conditioned" in debug.stderr
