"""Integrations with agent frameworks (each behind its optional extra)."""
