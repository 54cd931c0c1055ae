"""Users: created by the CLI for now (passwords and web sign-in come later)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from training_backend.db.models import User
from training_backend.errors import ApiError

MAX_NAME_CHARS = 200


def create_user(db: Session, *, name: str) -> User:
    """A new user called ``name`` (409 ``USER_EXISTS`` if the name is taken)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ApiError(400, "INVALID_NAME", f"A user name must be 1 to {MAX_NAME_CHARS} characters")
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise ApiError(409, "USER_EXISTS", f"User '{name}' already exists")
    user = User(name=name)
    db.add(user)
    db.commit()
    return user


def get_user_by_name(db: Session, *, name: str) -> User:
    """The user called ``name`` (404 ``USER_NOT_FOUND`` if there is none)."""
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise ApiError(404, "USER_NOT_FOUND", f"No user named '{name}'")
    return user
