"""Backends for state shared by gateway instances (Redis), behind small helpers and protocols."""
