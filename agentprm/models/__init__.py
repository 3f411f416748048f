"""Models: the locally trained tokenizer, tiny presets, and loading of any HF causal LM folder."""
