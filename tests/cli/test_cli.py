import sys

import pytest

import flatjax.reproduce
import flatjax.sweep
from flatjax.cli import main


def test_problems_command_prints_the_exact_values(capsys):
    assert main(["problems", "--progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "problems: 100%" in captured.err and "6/6" in captured.err  # the bar
    lines = {
        line.split("  ")[0].strip() + "|" + line[40:64].strip(): line
        for line in out.splitlines()
    }
    flat = next(
        v for k, v in lines.items() if k.startswith("FlatERM") and "flat ERM" in k
    )
    # F(e_I) = (1 - rho)^2 / 4 at rho = 1/4, and the SAER 1/2 (r - rho)^2 at r = 1/2.
    assert "0.1406" in flat and "0.03125" in flat
    sharp = next(v for k, v in lines.items() if "sam's fixed point" in k.lower())
    assert sharp.split()[-1] == "0.125"
    assert "elapsed" in out


def test_no_command_names_the_commands_and_fails(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "problems, sweep or reproduce" in err and len(err.splitlines()) == 1


def test_unknown_command_is_refused(capsys):
    assert main(["nonsense"]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "reproduce" in capsys.readouterr().out
    assert main(["reproduce", "--help"]) == 0
    assert "among: theorem1," in capsys.readouterr().out


def test_version_names_flatjax_jax_and_the_device(capsys):
    import jax

    from flatjax._environment import environment

    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    env = environment()
    assert out.startswith(f"flatjax {env['flatjax']} (jax {jax.__version__}")
    assert f"{env['platform']} device(s): {env['device_kind']}" in out


class _Stop(ValueError):
    pass


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize(
    "flags, expected", [([], None), (["--progress"], True), (["--no-progress"], False)]
)
def test_progress_bars_follow_the_terminal_unless_told(
    flags, expected, tty, monkeypatch, tmp_path, capsys
):
    # "auto" must reach the library as an explicit bool: the library reads a falsy
    # None as "off", which hid the bar of `flatjax reproduce` in a terminal.
    received = []

    def fake(*args, progress, **kwargs):
        received.append(progress)
        raise _Stop("stop here")

    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    monkeypatch.setattr(flatjax.reproduce, "reproduce", fake)
    monkeypatch.setattr(flatjax.sweep, "run_sweep", fake)
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[sweep]\nproblem = "SAMSharp"\noptimizer = "gd"\nseeds = 2\nsteps = 2\n'
        "[grid]\nn = [2]\nlearning_rate = [0.1]\n"
    )
    for argv in (["reproduce"], ["sweep", str(config), "--out", str(tmp_path)]):
        assert main(argv + flags) == 2
        assert "stop here" in capsys.readouterr().err
    want = tty if expected is None else expected
    assert received == [want, want]


def test_only_passes_each_experiment_once_in_the_order_given(monkeypatch, capsys):
    received = []

    def fake(*args, only, **kwargs):
        received.append(only)
        raise _Stop("stop here")

    monkeypatch.setattr(flatjax.reproduce, "reproduce", fake)
    assert main(["reproduce", "--only", "theorem6", "theorem1", "theorem6"]) == 2
    assert received == [["theorem6", "theorem1"]]
    assert main(["reproduce"]) == 2
    assert received[-1] is None  # all experiments
    capsys.readouterr()
