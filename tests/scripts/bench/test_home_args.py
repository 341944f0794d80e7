"""home.py's options, without running it."""

from __future__ import annotations

from pathlib import Path

import home
import pytest


def test_defaults_measure_2000_shoppers_for_three_rounds_of_20_seconds() -> None:
    options = home.parse_args([])

    assert (options.seconds, options.warmup, options.rounds, options.members, options.clients) == (
        20,
        3,
        3,
        2000,
        32,
    )
    assert options.json is None


def test_quick_shrinks_the_run_but_explicit_options_win() -> None:
    options = home.parse_args(["--quick", "--clients", "8", "--json", "out.json"])

    assert (options.seconds, options.rounds, options.members, options.clients) == (2, 1, 200, 8)
    assert options.json == Path("out.json")


@pytest.mark.parametrize(
    "argv",
    [["--database-url", "sqlite:///bench.db"], ["--seconds", "0"], ["--warmup", "-1"], ["--loadgen", "ab"]],
)
def test_refuses_what_it_cannot_run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        home.parse_args(argv)

    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
