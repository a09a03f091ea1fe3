"""Test doubles that speak the upstream providers' real wire formats over real sockets."""
