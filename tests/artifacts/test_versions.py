"""Version numbers: parsing, 'latest', and AIB's Latest/Source numbering schemes (Microsoft's own example)."""

from __future__ import annotations

import pytest

from vmforge.artifacts.errors import InvalidParameter
from vmforge.artifacts.versions import Candidate, latest, latest_platform, next_gallery_version, parse_version
from vmforge.errors import Conflict

MS_EXAMPLE = ["0.1.1", "0.1.2", "1.0.0", "1.0.1", "1.1.0", "1.1.1", "1.2.0", "2.0.0", "2.0.1", "2.1.0"]


@pytest.mark.parametrize("major,expected", [(None, "2.1.1"), (-1, "2.1.1"), (2, "2.1.1"), (1, "1.2.1"),
                                            (0, "0.1.3"), (7, "7.0.0")])
def test_latest_scheme_matches_microsofts_example(major: int | None, expected: str) -> None:
    assert next_gallery_version(MS_EXAMPLE, "Latest", major=major) == expected


def test_latest_scheme_orders_numerically_and_starts_at_1_0_0() -> None:
    assert next_gallery_version(["1.0.9", "1.0.10", "1.0.2"]) == "1.0.11"
    assert next_gallery_version([]) == "1.0.0"
    assert next_gallery_version([], major=3) == "3.0.0"


def test_source_scheme() -> None:
    assert next_gallery_version(MS_EXAMPLE, "Source", source_version="22.04.202401010") == "22.04.202401010"
    with pytest.raises(Conflict):
        next_gallery_version(MS_EXAMPLE, "source", source_version="1.01.1")
    with pytest.raises(InvalidParameter):
        next_gallery_version(MS_EXAMPLE, "Source", source_version="1.2.3.4")
    with pytest.raises(InvalidParameter):
        next_gallery_version(MS_EXAMPLE, "Source")
    with pytest.raises(InvalidParameter):
        next_gallery_version(MS_EXAMPLE, "Date")


def test_latest_skips_excluded() -> None:
    cands = [Candidate("1.0.0"), Candidate("1.0.10"), Candidate("2.0.0", exclude_from_latest=True)]
    assert latest(cands) == "1.0.10"
    assert latest([Candidate("1.0.0", True)]) is None


def test_parse_version_limits() -> None:
    assert parse_version("2147483647.0.1") == (2147483647, 0, 1)
    for bad in ("2147483648.0.0", "1.0", "1.0.0.0", "a.b.c", "", "latest"):
        with pytest.raises(InvalidParameter):
            parse_version(bad)


def test_latest_platform() -> None:
    assert latest_platform(["20.04.202209200", "20.04.202301100", "20.04.20230110"]) == "20.04.202301100"
    assert latest_platform(["1.9.0", "1.10.0"]) == "1.10.0"
    assert latest_platform([]) is None
