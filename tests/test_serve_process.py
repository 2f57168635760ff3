"""`kino serve`'s start: the port bound before the banner (a busy port: one line, exit 2), keys from a file,
never from the command line; through the CLI in this process (conftest's `run`: these refusals come before
anything is served). (One server per data directory and memory under hostile media are checked on a real
process in test_serve_restart.py.)"""

from __future__ import annotations

import socket

import pytest

from kino.errors import InputError

KEY = "sk-kino-process-key"


def test_busy_port_and_keys_on_the_command_line_are_one_line(run, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        # no such model: were the busy port not refused, the start would stop loading it (exit 4), not serve
        code, out, err = run(["serve", "--no-auth", "--port", str(port), "--data-dir", str(tmp_path / "d"),
                              "--model", str(tmp_path / "no-model")])
    assert code == 2, err
    lines = (out + err).strip().splitlines()
    assert lines == [f"kino: error: port {port} on 127.0.0.1 is in use by another program; stop it or give --port N"]
    code, out, err = run(["serve", "--api-key", "sk-visible-in-ps", "--data-dir", str(tmp_path / "d")])
    assert code == 2 and err.strip().startswith("kino: error: --api-key would show the key")
    assert len((out + err).strip().splitlines()) == 1


def test_keys_come_from_a_file(tmp_path):
    from kino.commands.serve import keys_from_file

    keys = tmp_path / "keys"
    keys.write_text(f"# kino keys\n{KEY}\n\n  sk-kino-second-key  \n")
    assert keys_from_file(keys) == (KEY, "sk-kino-second-key")
    (tmp_path / "empty").write_text("# none yet\n")
    with pytest.raises(InputError, match="holds no key"):
        keys_from_file(tmp_path / "empty")
