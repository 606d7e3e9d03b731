"""Webhook errors, rendered as problem+json (api.errors)."""

from api.errors import InvalidInput, NotFound


class EndpointNotFound(NotFound):
    code, title = "webhook_not_found", "No such webhook endpoint"


class DeliveryNotFound(NotFound):
    code, title = "delivery_not_found", "No such delivery"


class UrlRefused(InvalidInput):
    code, title = "url_refused", "Webhook URL refused"
