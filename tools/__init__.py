"""Tools that study or time the code, run from a checkout (``python -m tools.NAME``).

Not part of the installed package: they use ``adamae_rl`` as a library, and nothing in
``adamae_rl`` imports them.
"""
