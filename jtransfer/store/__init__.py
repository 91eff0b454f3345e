"""The workdir store: its layout, the results database, the zoo records, checkpoints and
tracking logs. It owns the names written to disk."""
