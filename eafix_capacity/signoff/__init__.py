"""Capacity sign-off before an upgrade: the twin, the rehearsals on it, the gates, the report."""
