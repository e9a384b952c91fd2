"""US metro areas the seeded practices are placed in: IANA time zone, real area codes, neighbourhoods.

Practices cycle through this list in order, so even three practices span three time zones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """A metro area: where a practice is, which area codes its patients mostly have."""

    metro: str
    timezone: str
    area_codes: tuple[str, ...]
    neighbourhoods: tuple[str, ...]


REGIONS: tuple[Region, ...] = (
    Region(
        "Los Angeles",
        "America/Los_Angeles",
        ("213", "310", "323", "424", "818"),
        ("Beverly Hills", "Santa Monica", "Pasadena", "Encino", "Silver Lake"),
    ),
    Region(
        "New York",
        "America/New_York",
        ("212", "646", "718", "917", "347"),
        ("Upper East Side", "Tribeca", "Park Slope", "Astoria", "Midtown"),
    ),
    Region(
        "Dallas",
        "America/Chicago",
        ("214", "469", "972", "817"),
        ("Uptown", "Highland Park", "Plano", "Frisco", "Southlake"),
    ),
    Region("Denver", "America/Denver", ("303", "720"), ("Cherry Creek", "LoDo", "Highlands", "Littleton")),
    Region("Phoenix", "America/Phoenix", ("602", "480", "623"), ("Scottsdale", "Arcadia", "Chandler", "Tempe")),
    Region(
        "Miami", "America/New_York", ("305", "786", "954"), ("Brickell", "Coral Gables", "Aventura", "Fort Lauderdale")
    ),
    Region("Seattle", "America/Los_Angeles", ("206", "425", "253"), ("Capitol Hill", "Bellevue", "Ballard")),
    Region("Houston", "America/Chicago", ("713", "281", "832"), ("River Oaks", "The Woodlands", "Memorial")),
    Region("Atlanta", "America/New_York", ("404", "678", "770"), ("Buckhead", "Midtown", "Alpharetta")),
    Region("Honolulu", "Pacific/Honolulu", ("808",), ("Kahala", "Ala Moana", "Kailua")),
    Region("Anchorage", "America/Anchorage", ("907",), ("Midtown", "South Anchorage")),
    Region("Boise", "America/Boise", ("208", "986"), ("Downtown", "Meridian", "Eagle")),
    Region("Indianapolis", "America/Indiana/Indianapolis", ("317", "463"), ("Carmel", "Broad Ripple", "Fishers")),
    Region("Detroit", "America/Detroit", ("313", "248", "586"), ("Birmingham", "Royal Oak", "Grosse Pointe")),
    Region("Chicago", "America/Chicago", ("312", "773", "872", "847"), ("Gold Coast", "Lincoln Park", "Oak Brook")),
    Region("Nashville", "America/Chicago", ("615", "629"), ("Green Hills", "The Gulch", "Franklin")),
    Region("Salt Lake City", "America/Denver", ("801", "385"), ("Sugar House", "Park City", "Draper")),
    Region("Boston", "America/New_York", ("617", "857", "781"), ("Back Bay", "Newton", "Wellesley")),
)

ALL_AREA_CODES: tuple[str, ...] = tuple(code for region in REGIONS for code in region.area_codes)

PRACTICE_NAME_PATTERNS: tuple[str, ...] = (
    "{metro} Aesthetics & Laser",
    "{surname} Plastic Surgery",
    "Glow Med Spa {metro}",
    "{hood} Dermatology",
    "Radiance Skin Studio",
    "Luxe Aesthetic Center of {metro}",
    "{surname} Cosmetic Dentistry",
    "Renew Wellness & Aesthetics",
    "{hood} Medical Spa",
    "{surname} Facial Plastics",
)
