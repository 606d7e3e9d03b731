"""What a stored event means to webhooks, without I/O: a message's attachments travel as metadata."""

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from webhooks.derive import derive
from webhooks.schemas import EventType


def test_a_message_carries_its_attachments_metadata_but_not_their_names():
    photo = {
        "id": str(uuid.uuid4()),
        "kind": "photo",
        "media_type": "image/jpeg",
        "filename": "smith-leg.jpg",
    }
    row = SimpleNamespace(
        pos=7,
        type="message.created",
        consult_id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        data={"message_id": "m1", "author_id": "u1", "attachments": [photo | {"size": 1234}]},
    )
    (event,) = derive(row)
    assert event.type is EventType.message_created
    assert event.data["attachments"] == [
        {"id": photo["id"], "kind": "photo", "media_type": "image/jpeg", "size": 1234}
    ]
    assert "smith" not in str(event.data)


def test_a_message_without_attachments_says_so():
    row = SimpleNamespace(
        pos=8,
        type="message.created",
        consult_id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        data={"message_id": "m2"},
    )
    assert derive(row)[0].data["attachments"] == []
