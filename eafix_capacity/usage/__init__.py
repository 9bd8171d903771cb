"""Utilisation: what the services really use, sampled from a cluster, and what they should ask for."""
