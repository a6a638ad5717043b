"""`fedcommittee` exit codes for errors: bad input is a usage error (2), a bug is not."""

from __future__ import annotations

import pytest

from fedcommittee import cli
from fedcommittee.cli import EXIT_USAGE, main

CONFIG = "configs/default.yaml"


@pytest.fixture(autouse=True)
def no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("FC_HOME", str(tmp_path / "no-network-here"))


def test_a_key_error_inside_a_command_is_a_bug_not_a_usage_error(monkeypatch, capsys):
    def broken(args):
        return {}["roundRules"]  # a record read with a field it lacks: a bug, not bad input

    monkeypatch.setattr(cli, "cmd_status", broken)  # build_parser looks it up when main runs
    with pytest.raises(KeyError, match="roundRules"):
        main(["status"])
    assert "usage" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["provider", CONFIG, "--name", "nobody"], "no provider named 'nobody'"),
        (["provider", CONFIG, "--name", "org1-a", "--name", "nobody"], "no provider named 'nobody'"),
        (["committee", CONFIG, "--name", "nobody"], "no committee member named 'nobody'"),
    ],
)
def test_an_unknown_name_on_the_command_line_is_a_usage_error(argv, words, capsys):
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert words in err and "(have [" in err  # the message lists the names there are


def test_named_turns_the_lookups_key_error_into_a_usage_error_with_its_message():
    def lookup(name: str) -> int:
        if name != "a":
            raise KeyError(f"no thing named {name!r} (have ['a'])")
        return 1

    assert cli._named(lookup, "a") == 1
    with pytest.raises(cli.UsageError, match=r"no thing named 'x' \(have \['a'\]\)"):
        cli._named(lookup, "x")
