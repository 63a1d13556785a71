"""Locations and distances: what a channel's two numbers become, and how far is shown."""

from __future__ import annotations

from typing import Any

import pytest

from core.geo import distance_km, format_km, location


def test_distances_along_a_meridian_the_equator_and_across_the_earth() -> None:
    # A degree of a great circle is 2πR/360 = 111.195 km (R = 6,371.0088 km); half the earth πR.
    assert distance_km((10.0, 106.0), (11.0, 106.0)) == pytest.approx(111.195, abs=0.001)
    assert distance_km((0.0, 105.0), (0.0, 106.0)) == pytest.approx(111.195, abs=0.001)
    assert distance_km((0.0, 0.0), (0.0, 180.0)) == pytest.approx(20015.114, abs=0.001)
    assert distance_km((11.3, 106.1), (11.3, 106.1)) == 0.0


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [
        ("11.2965", "106.1277", (11.2965, 106.1277)),  # Zalo sends strings
        (11.2965, 106.1277, (11.2965, 106.1277)),  # Telegram floats
        (-90, 180, (-90.0, 180.0)),
        ("90.0001", "106", None),
        ("11", "-180.5", None),
        ("nan", "106", None),
        ("inf", "106", None),
        ("", "106", None),
        ("11,3", "106,1", None),
        (True, 106, None),
        (None, 106, None),
        ([11], 106, None),
        ("1" * 40, "106", None),
    ],
)
def test_a_location_is_two_numbers_on_the_earth(
    latitude: Any, longitude: Any, expected: tuple[float, float] | None
) -> None:
    assert location(latitude, longitude) == expected


@pytest.mark.parametrize(
    ("km", "lang", "shown"),
    [(2.34, "vi", "2,3"), (2.34, "en", "2.3"), (0.04, "vi", "0,1"), (9.96, "vi", "10"),
     (18.747, "vi", "19"), (90.1, "en", "90")],
)  # fmt: skip
def test_distances_are_shown_to_a_tenth_below_ten_km(km: float, lang: str, shown: str) -> None:
    assert format_km(km, lang) == shown
