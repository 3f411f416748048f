"""HTTP services: the PRM scoring server (prm_server) and the AgentGym environment server (env_server)."""
