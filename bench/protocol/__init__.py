"""Protocols: presets, the cost model and the dry run (which plan units but never run them)."""
