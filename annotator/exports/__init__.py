"""Exports: the one query of annotated faces, what is asked, selection, splits, the manifest, and one module
per format (``exports/formats/``)."""
