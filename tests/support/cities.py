"""City variants for tests: the Pekanbaru file with some agencies linked to their own systems."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from actions.city import BackendConfig, LoadedCity


def with_backends(city: LoadedCity, backends: Mapping[str, BackendConfig]) -> LoadedCity:
    """Return the city with these agencies' `backend:` blocks set (as the city file would)."""
    raw = city.config.model_dump()
    for agency in raw["agencies"]:
        if agency["code"] in backends:
            agency["backend"] = backends[agency["code"]].model_dump()
    return dataclasses.replace(city, config=type(city.config).model_validate(raw))
