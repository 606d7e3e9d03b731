"""aiortc peers: the WebRTC mesh shared by the call client and the server's pre-call echo."""
