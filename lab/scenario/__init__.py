"""Scenario steps: one registered function per action, and the runner."""
