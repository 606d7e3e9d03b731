"""The signaling fabric: how one node's server reaches peers and shared state on the other nodes."""
