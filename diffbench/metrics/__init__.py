"""Metric math and states: `functional` (arrays in, numbers out), `states` (mergeable
accumulators for batches, shards and ranks) and `bootstrap` (confidence intervals)."""
