"""WebRTC signaling: call tokens, rooms, the WebSocket relay, pre-call checks."""
