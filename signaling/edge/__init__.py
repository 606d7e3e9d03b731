"""Where signaling meets sockets: the server that owns every connection, and its own-port listener."""
