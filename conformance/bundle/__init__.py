"""Release bundles: `manifest` reads one, `write` makes one, `rules` say when one can be trusted."""
