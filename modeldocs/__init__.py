"""The model docs pages (/docs/models/...), rendered from the catalog and the gateway's own spec."""
