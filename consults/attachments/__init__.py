"""Attachments on consult messages: resumable uploads, vetted types, stripped images, safe serving."""
