"""Helpers the tests share (git repositories, a kanban world, waiting for conditions)."""
