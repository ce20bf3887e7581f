"""Case records for load generation: random realistic cases or a replayed traffic file.

This module does not import Locust, so tests and scripts can use it without
Locust's gevent monkey-patching.

The random cases follow the shape of Guatemala's published COVID-19 data:
locations weighted roughly by where cases were reported (Guatemala department
first), ages concentrated between 20 and 59, and severity that rises with age.
The weights are rounded estimates for realistic load, not epidemiological data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

# fmt: off
FIRST_NAMES_FEMALE = (
    "María", "Ana", "Rosa", "Marta", "Carmen", "Gladys", "Sandra", "Claudia",
    "Ingrid", "Brenda", "Wendy", "Sindy", "Yesenia", "Lesbia", "Mirna", "Heidy",
    "Dulce María", "Ana Lucía", "María José", "Sofía", "Valeria", "Andrea",
    "Gabriela", "Alejandra", "Karla", "Evelyn", "Astrid", "Flor de María",
    "Juana", "Petrona", "Candelaria", "Ixchel", "Rigoberta", "Magdalena",
)
FIRST_NAMES_MALE = (
    "José", "Juan", "Carlos", "Luis", "Pedro", "Miguel", "Jorge", "Mario",
    "Héctor", "Byron", "Edgar", "Otto", "Mynor", "Selvin", "Marvin", "Erick",
    "Elmer", "Kevin", "Brayan", "Julio", "César", "Fernando", "Juan Carlos",
    "José Luis", "Luis Fernando", "Francisco", "Diego", "Santiago", "Sebastián",
    "Domingo", "Tomás", "Manuel", "Baltazar", "Pablo",
)
SURNAMES = (
    "López", "García", "Hernández", "Pérez", "Morales", "González", "Rodríguez",
    "Ramírez", "Castillo", "Méndez", "Cruz", "Mendoza", "Reyes", "Juárez",
    "Estrada", "Orellana", "Barrios", "Monterroso", "Ordóñez", "Arévalo",
    "Mazariegos", "Pineda", "Sandoval", "Chávez", "De León", "Recinos",
    "Ajanel", "Xicará", "Tzul", "Cux", "Coc", "Caal", "Choc", "Pop", "Tiul",
    "Xol", "Ixcoy", "Batz", "Sicán", "Tum", "Quiej", "Chiquín", "Yat", "Ixcot",
)
# fmt: on

# (location, weight). "Municipality, Department" except the department capitals
# that are known by one name; every one of the 22 departments appears.
LOCATIONS = (
    ("Guatemala City", 30),
    ("Mixco, Guatemala", 9),
    ("Villa Nueva, Guatemala", 9),
    ("San Miguel Petapa, Guatemala", 3),
    ("Chinautla, Guatemala", 2),
    ("Amatitlán, Guatemala", 2),
    ("Santa Catarina Pinula, Guatemala", 2),
    ("Villa Canales, Guatemala", 2),
    ("San José Pinula, Guatemala", 1),
    ("Fraijanes, Guatemala", 1),
    ("Quetzaltenango", 5),
    ("Coatepeque, Quetzaltenango", 2),
    ("Antigua Guatemala, Sacatepéquez", 3),
    ("Chimaltenango", 3),
    ("Escuintla", 4),
    ("Santa Lucía Cotzumalguapa, Escuintla", 1),
    ("Puerto San José, Escuintla", 1),
    ("Cobán, Alta Verapaz", 2),
    ("San Pedro Carchá, Alta Verapaz", 1),
    ("Salamá, Baja Verapaz", 1),
    ("Huehuetenango", 2),
    ("Flores, Petén", 1),
    ("San Benito, Petén", 1),
    ("Puerto Barrios, Izabal", 1),
    ("Zacapa", 1),
    ("Chiquimula", 1),
    ("Esquipulas, Chiquimula", 1),
    ("Jalapa", 1),
    ("Jutiapa", 1),
    ("Cuilapa, Santa Rosa", 1),
    ("Mazatenango, Suchitepéquez", 2),
    ("Retalhuleu", 2),
    ("San Marcos", 2),
    ("Malacatán, San Marcos", 1),
    ("Sololá", 1),
    ("Panajachel, Sololá", 1),
    ("Santa Cruz del Quiché, Quiché", 1),
    ("Chichicastenango, Quiché", 1),
    ("Totonicapán", 1),
    ("Guastatoya, El Progreso", 1),
)

# ((lowest age, highest age), weight): the share of cases in each age range.
AGE_RANGES = (
    ((0, 9), 4),
    ((10, 19), 7),
    ((20, 29), 22),
    ((30, 39), 23),
    ((40, 49), 18),
    ((50, 59), 13),
    ((60, 69), 8),
    ((70, 79), 3.5),
    ((80, 89), 1.2),
    ((90, 104), 0.3),
)

INFECTED_TYPE_WEIGHTS = {"communitary": 80, "contact": 14, "imported": 6}

# State weights for cases under 60 and for cases 60 and older.
STATE_WEIGHTS_UNDER_60 = {
    "asymptomatic": 30,
    "symptomatic": 12,
    "mild": 28,
    "moderate": 8,
    "severe": 2,
    "critical": 0.5,
    "recovered": 19,
    "deceased": 0.5,
}
STATE_WEIGHTS_60_AND_OVER = {
    "asymptomatic": 12,
    "symptomatic": 14,
    "mild": 18,
    "moderate": 16,
    "severe": 10,
    "critical": 5,
    "recovered": 17,
    "deceased": 8,
}


class TrafficFileError(ValueError):
    """A traffic file that cannot be replayed; the message names file and problem."""


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {dict: "object", list: "array", str: "string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _pick(rng: random.Random, weighted: Sequence[tuple[object, float]]) -> object:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def random_name(rng: random.Random) -> str:
    """Return a Guatemalan-style full name: one given name and two surnames."""
    first = rng.choice(FIRST_NAMES_FEMALE if rng.random() < 0.5 else FIRST_NAMES_MALE)
    return f"{first} {rng.choice(SURNAMES)} {rng.choice(SURNAMES)}"


def random_age(rng: random.Random) -> int:
    low, high = _pick(rng, AGE_RANGES)
    return rng.randint(low, high)


def random_record(rng: random.Random) -> dict:
    """Return one valid case record with random, realistic values."""
    age = random_age(rng)
    states = STATE_WEIGHTS_60_AND_OVER if age >= 60 else STATE_WEIGHTS_UNDER_60
    return {
        "name": random_name(rng),
        "location": _pick(rng, LOCATIONS),
        "age": age,
        "infected_type": _pick(rng, list(INFECTED_TYPE_WEIGHTS.items())),
        "state": _pick(rng, list(states.items())),
    }


def load_traffic(path: Path) -> list[dict]:
    """Read a traffic file: a non-empty JSON array of record objects.

    Raises TrafficFileError naming the file and the problem. Records are not
    validated here: replaying invalid records on purpose is a valid test, and the
    router's responses show which ones it rejected.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise TrafficFileError(
            f"traffic file {path}: cannot be read: {error}"
        ) from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TrafficFileError(f"traffic file {path}: invalid JSON: {error}") from error
    if not isinstance(data, list):
        raise TrafficFileError(
            f"traffic file {path}: expected a JSON array of record objects, "
            f"got a JSON {_json_type(data)}"
        )
    if not data:
        raise TrafficFileError(f"traffic file {path}: the array is empty")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise TrafficFileError(
                f"traffic file {path}: item {index} is a JSON {_json_type(item)}, "
                "expected an object"
            )
    return data


def cycle_records(records: Sequence[dict], start: int = 0) -> Iterator[dict]:
    """Yield copies of `records` in order, from `start`, forever."""
    index = start
    while True:
        yield dict(records[index % len(records)])
        index += 1
