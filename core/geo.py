"""Places on the map: a location the citizen shared, and how far an agency is from it.

Every channel hands the dialogue a location as two numbers (Telegram floats, Zalo strings or
numbers, the web chat's form fields); `location` takes any of those and refuses what is not a
point on Earth, so a bad value is an input the dialogue does not use, never an error.
"""

from __future__ import annotations

import math

Location = tuple[float, float]  # (latitude, longitude), degrees
EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


def location(latitude: object, longitude: object) -> Location | None:
    """(latitude, longitude) from numbers or numeric strings; None when either is not one, is
    not finite or is out of range."""
    point = (_degrees(latitude), _degrees(longitude))
    if point[0] is None or point[1] is None:
        return None
    if not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
        return None
    return point[0], point[1]


def _degrees(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, str) and len(value) > 32:
        return None
    try:
        return float(value)  # nan and inf are then out of any range
    except ValueError:
        return None


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine): as the crow flies, which is what the citizen is told."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def format_km(km: float, lang: str) -> str:
    """The distance as shown: "2,3" (Vietnamese decimal comma) or "2.3"; whole km from 10 on."""
    if round(km, 1) >= 10:
        return str(round(km))
    shown = f"{max(km, 0.1):.1f}"  # at the door: "~0,1 km", not "~0,0 km"
    return shown.replace(".", ",") if lang == "vi" else shown
