"""Model adapters: one module per model family; `base.py` holds the protocol they follow."""
