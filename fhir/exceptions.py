"""What the FHIR edge refuses, beyond what the domains behind it do."""

from api.errors import DomainError, InvalidInput


class Unprocessable(InvalidInput):
    """A well-formed resource that does not make a consult."""

    code, title = "fhir_unprocessable", "Unprocessable resource"


class BadSearch(DomainError):
    status, code, title = 400, "fhir_bad_search", "Unsupported search"
