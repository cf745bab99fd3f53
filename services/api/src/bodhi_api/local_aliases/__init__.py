"""Local aliases: names for GGUF files on the workers' machines, with load and request defaults."""
