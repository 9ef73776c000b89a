"""Source preparation: read and validate tables, photos and masks, automatic masks, ingest into the real store."""
