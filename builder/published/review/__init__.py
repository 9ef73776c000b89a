"""The human review of a build: queues of its images with automatic flags (queues, flags), served as one keyboard-driven page (server, static/)."""
