"""The management REST API (DRF) under /api/v1/: keys, members, usage, requests, invoices, audit."""
