"""One top-to-bottom script per stage: an Args dataclass (the --help text) and main(args)."""
