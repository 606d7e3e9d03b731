"""Start-up refuses weak signing keys outside development."""

import pytest
from pydantic import ValidationError

from api.settings import DEV_SECRET, Settings


@pytest.mark.parametrize("secret", [DEV_SECRET, "short-secret", "x" * 31])
def test_weak_secret_refused_outside_development(secret):
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(environment="production", jwt_secret=secret)
    Settings(environment="development", jwt_secret=secret)  # a laptop may use the default


def test_asymmetric_needs_a_key():
    with pytest.raises(ValidationError, match="PRIVATE_KEY"):
        Settings(environment="production", jwt_algorithm="RS256")


def test_access_tokens_live_at_most_fifteen_minutes():
    with pytest.raises(ValidationError):
        Settings(access_token_ttl=901)


def readme_settings_section() -> str:
    """The README's "Settings" section: where an operator looks, not anywhere in the file."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    return readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]


def test_every_setting_is_in_the_readme_settings_section():
    section = readme_settings_section()
    missing = [name for name in Settings.model_fields if f"`LIAISON_{name.upper()}" not in section]
    assert not missing, f"settings the README's Settings section does not name: {missing}"
