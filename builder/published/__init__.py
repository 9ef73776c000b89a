"""Tools that act on a published version folder: push, audit, export, evaluate."""
