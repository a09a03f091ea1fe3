"""Who changed what, when: old and new values of every change to keys, members, provider keys,
failover order and prices, written in the same transaction as the change."""
