"""Authentication and authorization errors."""

from api.errors import DomainError, Forbidden, NotFound, Unauthenticated


class InvalidCredentials(Unauthenticated):
    code, title = "invalid_credentials", "Invalid username or password"


class InvalidTokenError(Unauthenticated):
    code, title = "invalid_token", "Invalid or expired token"
    denial = True


class InvalidClient(Unauthenticated):
    code, title = "invalid_client", "Client authentication failed"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="invalid_client")


class UnsupportedGrant(DomainError):
    status, code, title = 400, "unsupported_grant_type", "Unsupported grant type"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="unsupported_grant_type")


class InvalidScope(DomainError):
    status, code, title = 400, "invalid_scope", "Scope not allowed for this client"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="invalid_scope")


class PermissionDenied(Forbidden):
    code, title = "permission_denied", "Your roles do not allow this"
    denial = True


class Hidden(NotFound):
    """Another org's resource, or none at all: the same answer, so ids do not leak."""

    denial = True


class InvalidRequest(DomainError):
    status, code, title = 400, "invalid_request", "Malformed token request"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="invalid_request")


class NotClinician(Forbidden):
    code, title = "not_a_clinician", "Consults are requested on behalf of an active clinician"
    denial = True
