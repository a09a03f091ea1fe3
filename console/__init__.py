"""Server-rendered pages for workspace owners, developers and finance (sign-in, dashboard, keys,
usage, invoices)."""
