"""LLM backends behind one async token-generator interface (see base.py and registry.py)."""
