"""Fixtures of the account tests (users, sessions, keys, agents, downloads): members, that
is users with a password and a live session."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from training_backend.db.models import User
from training_backend.db.types import utcnow
from training_backend.services.sessions import create_session
from training_backend.services.users import create_user

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Member:
    """A user with a password and a live session token."""

    user: User
    password: str
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        """``Authorization: Bearer <session token>`` plus ``extra``."""
        return {"Authorization": f"Bearer {self.token}", **extra}


MakeMember = Callable[..., Member]


@pytest.fixture
def make_member(db: Session) -> MakeMember:
    """``make_member(name=None, password=PASSWORD)``: a new user, signed in."""
    names = (f"member{n}" for n in itertools.count(1))

    def make(name: str | None = None, password: str = PASSWORD) -> Member:
        user = create_user(db, name=name or next(names), password=password)
        _, token = create_session(db, user_id=user.id, now=utcnow(), lifetime=timedelta(hours=1))
        return Member(user, password, token)

    return make


@pytest.fixture
def member(make_member: MakeMember) -> Member:
    """A signed-in user."""
    return make_member()
