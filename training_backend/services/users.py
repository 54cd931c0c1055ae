"""Users: created by the CLI, signed in with a name and a password."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from training_backend.db.models import User
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.services import passwords
from training_backend.services.sessions import end_all_sessions

MAX_NAME_CHARS = 200


def create_user(db: Session, *, name: str, password: str | None = None) -> User:
    """A new user called ``name`` (409 ``USER_EXISTS`` if the name is taken).

    Without ``password`` the user cannot sign in to the pages (API keys still work).
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ApiError(400, "INVALID_NAME", f"A user name must be 1 to {MAX_NAME_CHARS} characters")
    if password is not None:
        passwords.check_password_rules(password)
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise ApiError(409, "USER_EXISTS", f"User '{name}' already exists")
    user = User(name=name)
    if password is not None:
        user.password_hash = passwords.hash_password(password)
    db.add(user)
    db.commit()
    return user


def get_user_by_name(db: Session, *, name: str) -> User:
    """The user called ``name`` (404 ``USER_NOT_FOUND`` if there is none)."""
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise ApiError(404, "USER_NOT_FOUND", f"No user named '{name}'")
    return user


def set_password(db: Session, *, user_id: str, password: str) -> int:
    """Replace the user's password and end every session they have; returns how many.

    Whoever knew the old password (or held a session made with it) is signed out.
    """
    passwords.check_password_rules(password)
    _store_password(db, user_id=user_id, password=password)
    return end_all_sessions(db, user_id=user_id, now=utcnow())


def _store_password(db: Session, *, user_id: str, password: str) -> None:
    stored = passwords.hash_password(password)
    db.execute(update(User).where(User.id == user_id).values(password_hash=stored))
    db.commit()


def authenticate_password(db: Session, *, name: str, password: str) -> User | None:
    """The user called ``name`` if ``password`` is theirs, else ``None``.

    Takes about as long whether or not the user exists or has a password, so the
    answer tells nothing about which names exist.
    """
    name = name.strip()
    user = None
    if 0 < len(name) <= MAX_NAME_CHARS and len(password) <= passwords.MAX_PASSWORD_CHARS:
        user = db.scalar(select(User).where(User.name == name))
    db.commit()  # no connection held through the slow hash below
    stored = None if user is None else user.password_hash
    if not passwords.verify_password(password[: passwords.MAX_PASSWORD_CHARS], stored):
        return None
    assert user is not None and stored is not None
    if passwords.needs_rehash(stored):
        _store_password(db, user_id=user.id, password=password)
    return user
