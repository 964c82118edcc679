"""Shared test support: real service URLs, scratch databases, processes, images, references."""
