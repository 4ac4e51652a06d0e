"""results.json (the machine-readable record of a run), its merge, and the HTML report rendered from it."""
