"""Root pytest configuration: modules that need an optional package are not collected without it."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("openrlhf") is None:  # scripts/setup.sh installs it (--no-deps)
    collect_ignore_glob.append("agentprm/integrations/openrlhf_agent.py")
