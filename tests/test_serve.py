"""`tinyviz serve`: the dashboard started with the memory settings of a crowded server
(`tinyviz.runtime.serve`), Streamlit's options passed through as given."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tinyviz import cli
from tinyviz.runtime import serve

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_are_added_and_the_users_own_are_kept():
    env = serve.environment({"PATH": "/bin", "MALLOC_ARENA_MAX": "4"})
    assert env == {"PATH": "/bin", "PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "4"}


def test_streamlits_options_reach_streamlit_as_given(monkeypatch):
    seen = {}

    def execve(path, argv, env):
        seen.update(path=path, argv=argv, env=env)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(os, "chdir", lambda where: seen.update(cwd=where))
    assert cli.main(["serve", "--server.port", "8502", "--theme.base", "dark"]) == 0
    assert seen["argv"][1:] == [
        "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", "8502", "--theme.base", "dark",
    ]  # fmt: skip
    assert seen["env"]["PYTHONMALLOC"] == "malloc" and seen["cwd"] == ROOT


def test_without_a_dashboard_beside_the_package_it_says_so_in_one_line(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setattr(serve, "APP", tmp_path / "app.py")
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("nothing may start"))
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no dashboard at ") and err.count("\n") == 1


def test_help_is_the_commands_own():
    done = subprocess.run(
        [sys.executable, "-m", "tinyviz", "serve", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "PYTHONMALLOC=malloc" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_it_starts_answers_with_the_settings_in_its_environment(tmp_path):
    port = _free_port()
    env = {**os.environ, "TINYVIZ_CACHE": str(tmp_path)}
    env.pop("PYTHONMALLOC", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyviz", "serve", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, healthy = time.time() + 90, False
        while time.time() < deadline and not healthy and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                healthy = urllib.request.urlopen(url, timeout=2).read() == b"ok"
            except OSError:
                time.sleep(0.5)
        assert healthy, proc.stdout.read().decode()[-2000:] if proc.poll() is not None else ""
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environ and b"MALLOC_ARENA_MAX=2" in environ
        cwd = Path(f"/proc/{proc.pid}/cwd").resolve()
        assert cwd == ROOT  # where .streamlit/config.toml is read from
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_servers_threads_hand_the_interpreter_on_after_a_quarter_millisecond():
    """Each torch operation of a photo's forward pass gives the interpreter lock up and must
    get it back: at Python's default 5 ms a crowd's busy script threads held each return up
    that long (bench/interpreter_share.py). The server's warm-up, run once per server by
    the first page, sets the shorter interval once the libraries it imports are in."""
    from pages import _cache
    from tinyviz.runtime import device

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        _cache.warm_up.clear()
        _cache.warm_up().join()
        assert sys.getswitchinterval() == pytest.approx(device.SWITCH_SECONDS)
    finally:
        sys.setswitchinterval(before)
