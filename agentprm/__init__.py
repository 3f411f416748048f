"""agentprm: process reward models for LLM agents (AgentPRM, Xi et al., arXiv 2511.08325)."""

__version__ = "0.1.0"
