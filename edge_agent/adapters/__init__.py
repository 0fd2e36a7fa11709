"""One module per peripheral or link, all with the same small interface (see base.py)."""
