"""The test suite: folders mirror the packages (core, cli, build, published, curation, generation, cards)."""
