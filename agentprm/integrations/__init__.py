"""Bridges to other frameworks (OpenRLHF's agent interface)."""
