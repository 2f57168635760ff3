"""The CLI's help reads for people (issue 16 #27): no `<bool>` on flags, no `{prompt}`, no `<list[str]>`."""

from __future__ import annotations

import re

import pytest

from kino import __version__
from kino.cli import command, main


def _commands(cmd, path=()):
    yield path
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", list(_commands(command())), ids=" ".join)
def test_help_has_no_internal_type_names(path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for bad in (r"<bool>", r"<list\[", r"\{[a-z_]+\}", r"\w \.(\s|$)"):  # " ." : markup eaten, e.g. "[env X]"
        assert not re.search(bad, out), f"{' '.join(path)} --help shows {bad!r}"


def test_version_and_model_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"kino {__version__}"
    with pytest.raises(SystemExit):
        main(["model", "--help"])
    out = capsys.readouterr().out
    assert "export" in out.split("Commands")[0]  # the group's own line names export, not only init


def test_a_bad_choice_reads_plainly(run):
    code, _, err = run(["eval", "--suite", "bogus"])
    assert code == 2 and "'bogus' is not one of 'world-train'" in err and "Value error" not in err
