"""What the commands print off a terminal (issue 16 #28): whole lines, no padding, the right plurals."""

from __future__ import annotations

import io

from kino.commands.output import console, count, plural


def test_console_off_a_terminal_keeps_lines_whole_and_unpadded(monkeypatch):
    from rich.table import Table

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    c = console()
    path = "/a/very/long/folder/" * 12 + "video.mp4"  # 249 characters: rich cuts it at 80 by default
    table = Table(show_header=False, box=None)
    for key, value in (("file", path), ("result", "ok")):
        table.add_row(key, value)
    c.print(table)
    c.print("word " * 40)
    lines = out.getvalue().splitlines()
    assert any(line.endswith(path) for line in lines) and lines[1].split() == ["result", "ok"]
    assert all(line == line.rstrip() for line in lines)
    assert lines[-1] == ("word " * 40).strip()


def test_plurals():
    assert (count(1, "frame"), count(2, "frame"), count(0, "clip")) == ("1 frame", "2 frames", "0 clips")
    assert plural(1, "piece") == "piece" and plural(3, "entry", "entries") == "entries"
