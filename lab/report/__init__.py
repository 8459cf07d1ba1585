"""Run results as data, then renderers (JSON, JUnit XML)."""
