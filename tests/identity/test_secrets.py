"""Client secrets as vmforge hands them out: the shape Entra ID uses, and usable on a command line as typed."""

from __future__ import annotations

import re
from unittest import mock

from vmforge.identity import hashing


def test_secrets_have_entra_shape_and_never_start_with_a_dash() -> None:
    made = {hashing.new_secret() for _ in range(2000)}
    assert len(made) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{40}", s) for s in made)
    assert not any(s.startswith("-") for s in made)


def test_a_drawn_secret_starting_with_a_dash_is_drawn_again() -> None:
    # `az login -p -abc…` fails ("the first character of the password is '-'"): such a draw is never handed out.
    with mock.patch.object(hashing.secrets, "token_urlsafe", side_effect=["-" + "a" * 39, "b" * 40]) as draw:
        assert hashing.new_secret() == "b" * 40
    assert draw.call_count == 2
