"""WebRTC signaling (to come)."""
