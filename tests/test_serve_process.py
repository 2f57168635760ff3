"""`kino serve` as a process: the port bound before the banner (a busy port: one line, exit 2), keys from a
file, never from the command line. (One server per data directory and memory under hostile media are
checked on a real process in test_serve_restart.py.)"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from kino.errors import InputError

KEY = "sk-kino-process-key"


def kino(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "kino", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_busy_port_and_keys_on_the_command_line_are_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = kino("serve", "--no-auth", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2, r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert lines == [f"kino: error: port {port} on 127.0.0.1 is in use by another program; stop it or give --port N"]
    r = kino("serve", "--api-key", "sk-visible-in-ps", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.strip().startswith("kino: error: --api-key would show the key")
    assert len(r.stderr.strip().splitlines()) == 1


def test_keys_come_from_a_file(tmp_path):
    from kino.commands.serve import keys_from_file

    keys = tmp_path / "keys"
    keys.write_text(f"# kino keys\n{KEY}\n\n  sk-kino-second-key  \n")
    assert keys_from_file(keys) == (KEY, "sk-kino-second-key")
    (tmp_path / "empty").write_text("# none yet\n")
    with pytest.raises(InputError, match="holds no key"):
        keys_from_file(tmp_path / "empty")
