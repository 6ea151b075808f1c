import pytest

from flatjax.cli import main


def test_problems_command_prints_the_exact_values(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
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


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "problems" in capsys.readouterr().out


def test_unknown_command_is_refused():
    with pytest.raises(SystemExit):
        main(["nonsense"])
