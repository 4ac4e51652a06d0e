"""Compile targets: named, versioned recipes that derive a graph from the fp32 export (recipes.py)."""
