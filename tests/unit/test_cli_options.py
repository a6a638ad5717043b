"""The `fedcommittee` command line as a user reads it: global options on either side of the
subcommand, a description for every command, help text with its default for every option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcommittee.cli import EXIT_UNAVAILABLE, build_parser, main

CONFIG = "configs/default.yaml"

# The shortest valid command line of every command (rules: of every action).
MINIMAL = {
    "smoke": ["smoke"],
    "publish": ["publish", CONFIG],
    "provider": ["provider", CONFIG, "--name", "p1"],
    "committee": ["committee", CONFIG, "--name", "m1"],
    "status": ["status"],
    "history": ["history", "model", "m"],
    "verify": ["verify"],
    "report": ["report", "--model-id", "m"],
    "dashboard": ["dashboard"],
    "rules propose": ["rules", "propose", "--model-id", "m", "--quorum", "2"],
    "rules vote": ["rules", "vote", "p1", "--approve"],
    "rules list": ["rules", "list", "--model-id", "m"],
    "run": ["run", CONFIG],
}


def subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """Every (command name, parser) below ``parser``, nested ones (rules ACTION) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                yield full, sub
                yield from subparsers(sub, f"{full} ")


PARSER = build_parser()
COMMANDS = dict(subparsers(PARSER))


def test_every_command_has_a_minimal_command_line_here():
    leaves = {n for n, p in COMMANDS.items() if not any(m.startswith(f"{n} ") for m in COMMANDS)}
    assert leaves == set(MINIMAL), "add the new command to MINIMAL (and its options to the checks)"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description(name):
    # `fedcommittee smoke --help` used to print no description at all.
    assert (COMMANDS[name].description or "").strip(), f"`{name}` has no description in its --help"


def options_of(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        yield action


ALL_OPTIONS = [(name, action) for name, p in [("", PARSER), *COMMANDS.items()] for action in options_of(p)]


@pytest.mark.parametrize(
    "name, action", ALL_OPTIONS, ids=[f"{n or 'fedcommittee'}:{a.dest}" for n, a in ALL_OPTIONS]
)
def test_every_option_has_help_that_says_its_default(name, action):
    assert (action.help or "").strip(), f"`{name}` {action.option_strings or action.dest}: no help text"
    flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
    positional = not action.option_strings
    if flag or positional or action.required:
        return  # a flag is off unless given; a positional or required option has no default
    helptext = action.help % {"default": action.default, "prog": "fedcommittee"}
    assert "default" in helptext, f"`{name}` {action.option_strings}: help does not say the default"


def test_run_timeout_help_shows_its_default():
    text = COMMANDS["run"].format_help()
    assert "(default: 1800)" in " ".join(text.split())


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_home_works_on_either_side_of_the_subcommand(name, tmp_path):
    argv = MINIMAL[name]
    home = tmp_path / "state"
    assert PARSER.parse_args(argv).home is None  # unset: $FC_HOME or ./.fedcommittee, later
    assert PARSER.parse_args(["--home", str(home), *argv]).home == home
    assert PARSER.parse_args([*argv, "--home", str(home)]).home == home
    # Given on both sides, the later one wins, as a repeated option does.
    assert PARSER.parse_args(["--home", "first", *argv, "--home", str(home)]).home == home


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(MINIMAL)),
    home=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1).filter(
        lambda h: not h.startswith("-")
    ),
    before=st.booleans(),
)
def test_home_anywhere_is_the_home_used(name, home, before):
    argv = MINIMAL[name]
    argv = ["--home", home, *argv] if before else [*argv, "--home", home]
    assert PARSER.parse_args(argv).home == Path(home)


def test_home_after_the_subcommand_reaches_the_command(tmp_path, capsys):
    # Not only parsed: the command looks for the network in that folder.
    empty = tmp_path / "no-network-here"
    assert main(["status", "--home", str(empty)]) == EXIT_UNAVAILABLE
    assert str(empty / "endpoints.json") in capsys.readouterr().err
