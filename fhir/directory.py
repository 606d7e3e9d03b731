"""Who: organizations, practitioners and the roles they hold on call, as FHIR R4 resources."""

from datetime import datetime

from auth.models import User
from fhir import codes
from fhir.resources import Resource, instant, ref
from orgs.models import Organization
from rosters.models import Shift, SpecialistProfile


def organization(org: Organization) -> Resource:
    return {
        "resourceType": "Organization",
        "id": str(org.id),
        "active": True,
        "name": org.name,
        "type": [{"coding": [{"system": codes.ORG_KIND, "code": org.kind}], "text": org.kind}],
    }


def practitioner(user: User) -> Resource:
    out: Resource = {
        "resourceType": "Practitioner",
        "id": str(user.id),
        "identifier": [{"system": codes.USERNAME, "value": user.username}],
        "active": user.is_active,
    }
    if user.display_name:
        out["name"] = [{"text": user.display_name}]
    return out


def practitioner_role(
    shift: Shift, *, specialty: str, profile: SpecialistProfile | None, at: datetime
) -> Resource:
    """A shift on a roster: this practitioner on call for this specialty, for this org, for a while."""
    out: Resource = {
        "resourceType": "PractitionerRole",
        "id": str(shift.id),
        "active": shift.starts_at <= at < shift.ends_at,
        "period": {"start": instant(shift.starts_at), "end": instant(shift.ends_at)},
        "practitioner": ref("Practitioner", shift.specialist_id),
        "organization": ref("Organization", shift.org_id),
        "code": [{"text": f"on call, tier {shift.tier}"}],
        "specialty": [{"coding": [{"system": codes.SPECIALTY, "code": specialty}], "text": specialty}],
    }
    if profile is not None:
        out["availabilityExceptions"] = f"currently {profile.availability}"
    return out
