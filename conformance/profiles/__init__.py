"""Shape profiles as data: what a graph must be for the compilers a profile stands for.

`<name>.toml` holds one profile's rules, each with the reason for it and where that reason comes from (a
measurement, a compiler's error message, an upstream issue); `rules.py` parses it into `ProfileRules`, whose
`sha256` a bundle manifest records so that a later change of the rules is visible. `mask.py` is the profile's
attention-mask policy: the finite value a static graph's causal mask uses instead of -inf.
"""
