"""Model families (``spark/``, ``orpheus/``, ``piper/``, …) and the registry that picks one
(:mod:`fasttts.models.registry`). Families never import each other."""
