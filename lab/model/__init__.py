"""The model: pure data loaded from YAML, validated and derived.

Nothing here imports Mininet or starts a process.
"""
