"""Pydantic request (…Create / …Update) and response (…Read) models of the REST API."""
