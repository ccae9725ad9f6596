"""An embedded table of China's largest cities, for scenarios that spread sites over the country.

APPROXIMATE, from general knowledge, not from a dataset: ``population_m`` is roughly the urban population
(城区人口, the built-up districts, not the whole administrative area) in millions around the 2020 census, rounded;
the centre is the city's conventional centre point (lat/lng to about 0.01 degree, WGS84). The figures serve as
weights for dividing a country's sites among cities in proportion; do not quote them as statistics.

``radius_m`` is the radius of the disc over which a city's sites are spread, by a rule of thumb rather than a
measurement: 6 km times the square root of the population in millions (Shanghai ~27 km, Urumqi ~12 km), rounded to
the kilometre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CityRow:
    """One row of the embedded table: name, centre (WGS84 degrees), approximate urban population (millions)."""

    name: str
    lat: float
    lng: float
    population_m: float

    @property
    def radius_m(self) -> float:
        """Radius of the disc the city's sites are spread over (see the module docstring)."""
        return 1000.0 * round(6.0 * math.sqrt(self.population_m))


# Sorted by population, largest first.
CHINA_CITIES: tuple[CityRow, ...] = (
    CityRow("Shanghai", 31.2304, 121.4737, 19.9),
    CityRow("Beijing", 39.9042, 116.4074, 17.8),
    CityRow("Shenzhen", 22.5431, 114.0579, 17.4),
    CityRow("Chongqing", 29.5630, 106.5516, 15.3),
    CityRow("Guangzhou", 23.1291, 113.2644, 15.0),
    CityRow("Chengdu", 30.5728, 104.0668, 13.6),
    CityRow("Tianjin", 39.0842, 117.2009, 11.7),
    CityRow("Wuhan", 30.5928, 114.3055, 11.0),
    CityRow("Dongguan", 23.0207, 113.7518, 9.6),
    CityRow("Xi'an", 34.3416, 108.9398, 9.3),
    CityRow("Hangzhou", 30.2741, 120.1551, 8.7),
    CityRow("Foshan", 23.0215, 113.1214, 8.5),
    CityRow("Nanjing", 32.0603, 118.7969, 7.9),
    CityRow("Shenyang", 41.8057, 123.4315, 7.0),
    CityRow("Zhengzhou", 34.7466, 113.6254, 6.3),
    CityRow("Qingdao", 36.0671, 120.3826, 6.0),
    CityRow("Suzhou", 31.2989, 120.5853, 5.9),
    CityRow("Changsha", 28.2282, 112.9388, 5.6),
    CityRow("Jinan", 36.6512, 117.1201, 5.6),
    CityRow("Kunming", 24.8801, 102.8329, 5.3),
    CityRow("Hefei", 31.8206, 117.2272, 5.1),
    CityRow("Harbin", 45.8038, 126.5350, 5.0),
    CityRow("Dalian", 38.9140, 121.6147, 5.0),
    CityRow("Shijiazhuang", 38.0428, 114.5149, 4.6),
    CityRow("Xiamen", 24.4798, 118.0894, 4.6),
    CityRow("Nanning", 22.8170, 108.3665, 4.6),
    CityRow("Changchun", 43.8171, 125.3235, 4.5),
    CityRow("Taiyuan", 37.8706, 112.5489, 4.3),
    CityRow("Ningbo", 29.8683, 121.5440, 4.2),
    CityRow("Urumqi", 43.8256, 87.6168, 3.8),
)

CITY_TABLES = {"china": CHINA_CITIES}
"""Embedded tables by the name a scenario uses (``sites.cities = "china"``)."""


def lookup(name: str) -> CityRow | None:
    """The row of the embedded table named ``name`` (case-insensitive), or None."""
    key = name.casefold()
    for table in CITY_TABLES.values():
        for row in table:
            if row.name.casefold() == key:
                return row
    return None
