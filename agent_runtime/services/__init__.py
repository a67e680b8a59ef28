"""Service functions: every query of the service lives in this package."""
