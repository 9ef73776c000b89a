"""The kernel every stage imports: record schema, stage stores, configs, errors, progress."""
