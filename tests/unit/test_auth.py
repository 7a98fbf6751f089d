import subprocess
import sys
from pathlib import Path

import pytest

from alerts.auth import LoginLimiter, Role, UserStore, hash_password, verify_password

pytestmark = pytest.mark.unit


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second
    assert first.startswith("scrypt$")
    assert "correct horse" not in first
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    assert not verify_password("correct horse", "garbage")


def test_login_session_and_logout(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "db")
    store.add_user("ana", Role.OPERATOR, "s3cret-password")
    assert store.login("ana", "wrong-password") is None
    assert store.login("nobody", "s3cret-password") is None
    result = store.login("ana", "s3cret-password")
    assert result is not None
    token, session = result
    assert session.name == "ana" and session.role is Role.OPERATOR and session.csrf
    assert store.session(token) == session
    store.logout(token)
    assert store.session(token) is None


def test_sessions_survive_reopen_and_end_on_password_change(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "db")
    store.add_user("bo", Role.SUPERVISOR, "first-password")
    token, _ = store.login("bo", "first-password") or ("", None)
    store.close()
    reopened = UserStore(tmp_path / "db")
    assert reopened.session(token) is not None
    reopened.add_user("bo", Role.SUPERVISOR, "second-password")
    assert reopened.session(token) is None
    assert reopened.login("bo", "first-password") is None


@pytest.mark.parametrize(("name", "password"), [("", "long-enough-pw"), ("ok", "short")])
def test_add_user_rejects_bad_input(tmp_path: Path, name: str, password: str) -> None:
    with pytest.raises(ValueError):
        UserStore(tmp_path / "db").add_user(name, Role.OPERATOR, password)


def test_login_limiter_blocks_after_failures_then_window_passes() -> None:
    now = [0.0]
    limiter = LoginLimiter(failures_allowed=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.blocked("10.0.0.1")
        limiter.failed("10.0.0.1")
    assert limiter.blocked("10.0.0.1")
    assert not limiter.blocked("10.0.0.2")
    now[0] = 61.0
    assert not limiter.blocked("10.0.0.1")


def test_users_add_command_reads_password_from_stdin(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "users",
            "add",
            "cy",
            "--role",
            "operator",
            "--password-stdin",
        ],
        input="a-long-password\n",
        capture_output=True,
        text=True,
        env={"CLONEWATCH_STORE__PATH": f'"{db}"', "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "a-long-password" not in done.stdout + done.stderr
    assert UserStore(db).login("cy", "a-long-password") is not None
