"""One place that imports the openai `clip` package, quieting its import-time deprecation noise."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # openai-clip 1.0.1 does `from pkg_resources import packaging`, which warns on every import.
    warnings.simplefilter("ignore")
    import clip
    import clip.model

__all__ = ["clip"]
