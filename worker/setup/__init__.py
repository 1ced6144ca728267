"""Preparing the agents' own configuration (Codex's config.toml, a Hermes home) for kanban."""
