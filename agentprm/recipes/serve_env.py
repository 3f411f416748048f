"""`agentprm serve-env`: serve one environment over AgentGym's env-server HTTP protocol.

AgentGym's clients (agentenv's BabyAIEnvClient, TextCraftEnvClient, WebshopEnvClient with
env_server_base=http://HOST:PORT) and agentprm.envs.agentgym_remote.AgentGymEnv then play our envs
as they play AgentGym's own servers; the routes are in agentprm.serving.env_server.

    agentprm serve-env --env babyai-agentgym --port 8000
    # AgentGymEnv("http://127.0.0.1:8000", "babyai").reset(options={"task": 7})
"""

from __future__ import annotations

import dataclasses

import agentprm.envs as E


@dataclasses.dataclass
class Args:
    env: str = "babyai-agentgym"
    """environment: babyai, babyai-agentgym (AgentGym's BabyAI server exactly), textcraft or webshop"""
    host: str = "127.0.0.1"
    """interface to listen on (0.0.0.0 to accept other machines; the server has no authentication)"""
    port: int = 8000
    """port (AgentGym's servers default to 8000)"""
    max_envs: int = 1024
    """most live environments at once; a create beyond it answers HTTP 503"""
    idle_seconds: float = 3600.0
    """an environment no request used for this long is closed (raise it for slow policies)"""


def main(args: Args) -> None:
    # 1. Check the arguments before importing the server stack (a typo fails fast, naming the fix).
    name = E.short_name(args.env)
    if args.max_envs < 1 or not args.idle_seconds > 0:
        raise ValueError(
            f"--max-envs must be >= 1 and --idle-seconds > 0, got {args.max_envs}, {args.idle_seconds}"
        )
    try:
        import uvicorn

        from agentprm.serving.env_server import make_app
    except ImportError as exc:
        raise ValueError(f"serve-env needs fastapi and uvicorn ({exc}): pip install fastapi uvicorn") from exc

    # 2. Build the app and serve until Ctrl-C; shutting down closes every live env.
    app = make_app(name, max_envs=args.max_envs, idle_seconds=args.idle_seconds)
    print(
        f"serving {name} ({E.mode_note(name)}) with AgentGym's {E.family(name)} protocol on "
        f"http://{args.host}:{args.port} (max_envs={args.max_envs}, idle_seconds={args.idle_seconds:g})",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
