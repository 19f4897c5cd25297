"""The shared vocabulary: types, wire schema, config base, errors, preprocessing, weights.

It imports nothing else of ours; every stage imports it (see docs/development.md "Layout").
"""
