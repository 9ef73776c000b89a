"""`builder evaluate`: per-skin-tone fidelity and downstream utility of a published version."""
