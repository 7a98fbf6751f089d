"""Console users, password hashing, login sessions, CSRF tokens and login rate limiting.

Users live in the service's SQLite database (table `users`), made with
`clonewatch users add`; there is no built-in default password. Passwords are stored as
salted scrypt hashes (a memory-hard KDF from the standard library). Sessions are random
tokens kept in the same database, so a restart does not log operators out mid-call.
All methods are blocking (SQLite, scrypt): the web layer calls them off the event loop.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRYPT_N = 2**14  # about 50 ms and 16 MiB per hash on this class of machine
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
SESSION_TTL_S = 12 * 3600  # one operator shift
MIN_PASSWORD_CHARS = 10
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_S = 300.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class Role(enum.StrEnum):
    """What a console user may do; supervisors may also manage escalations."""

    OPERATOR = "operator"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in console user."""

    name: str
    role: Role
    csrf: str


def hash_password(password: str) -> str:
    """A salted scrypt hash in the form `scrypt$n$r$p$salt$hash` (base64)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by `hash_password` (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024**2)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _token_hash(token: str) -> str:
    # Only a hash of the cookie value is stored, so a copy of the database opens no session.
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users and sessions in SQLite; thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def add_user(self, name: str, role: Role, password: str) -> None:
        """Create or update a user.

        Raises:
            ValueError: the name is empty or the password shorter than `MIN_PASSWORD_CHARS`.
        """
        if not name or len(name) > 64 or not name.isprintable():
            raise ValueError("user name must be 1-64 printable characters")
        if len(password) < MIN_PASSWORD_CHARS:
            raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        hashed = hash_password(password)
        with self._lock:
            self._db.execute(
                "INSERT INTO users(name, role, password_hash, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET role=excluded.role, "
                "password_hash=excluded.password_hash, updated_at=excluded.updated_at",
                (name, str(role), hashed, time.time()),
            )
            # A changed password ends the user's open sessions.
            self._db.execute("DELETE FROM sessions WHERE name = ?", (name,))

    def has_users(self) -> bool:
        """Whether any console user exists."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def login(self, name: str, password: str) -> tuple[str, Session] | None:
        """Check the password; on success a new session token and its session."""
        with self._lock:
            row = self._db.execute(
                "SELECT role, password_hash FROM users WHERE name = ?", (name,)
            ).fetchone()
        # Hash even for unknown users, so timing does not reveal which names exist.
        stored = row[1] if row else hash_password(secrets.token_hex(8))
        if not verify_password(password, stored) or row is None:
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions(token_hash, name, csrf, expires_at) VALUES (?, ?, ?, ?)",
                (_token_hash(token), name, csrf, time.time() + SESSION_TTL_S),
            )
        return token, Session(name, Role(row[0]), csrf)

    def session(self, token: str) -> Session | None:
        """The live session of a cookie token, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT s.name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.name "
                "WHERE s.token_hash = ? AND s.expires_at > ?",
                (_token_hash(token), time.time()),
            ).fetchone()
        return Session(row[0], Role(row[1]), row[2]) if row else None

    def logout(self, token: str) -> None:
        """End a session."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


class LoginLimiter:
    """Allows `LOGIN_FAILURES_ALLOWED` failed logins per key in a sliding window."""

    def __init__(
        self,
        failures_allowed: int = LOGIN_FAILURES_ALLOWED,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_allowed = failures_allowed
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, key: str) -> bool:
        """Whether `key` (e.g. client address, or user name) must wait."""
        recent = self._recent(key)
        return len(recent) >= self.failures_allowed

    def failed(self, key: str) -> None:
        """Record a failed attempt for `key`."""
        self._recent(key).append(self._clock())

    def succeeded(self, key: str) -> None:
        """Forget the failures of `key`."""
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window_s
        while times and times[0] < horizon:
            times.popleft()
        return times
