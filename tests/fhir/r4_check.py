"""Run in the R4 virtualenv: one FHIR JSON resource per input line; answers "ok" or the error."""

import json
import sys

from fhir.resources import construct_fhir_element


def check(line: str) -> str:
    data = json.loads(line)
    try:
        construct_fhir_element(data["resourceType"], data)
    except Exception as exc:  # whatever the models refuse is the answer
        return " ".join(str(exc).split())[:2000]
    return "ok"


for line in sys.stdin:
    print(check(line), flush=True)
