"""Policy backends: local transformers models and OpenAI-compatible servers."""
