"""Capture every link with tcpdump; analyse the pcaps with pure functions."""
