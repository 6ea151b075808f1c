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
