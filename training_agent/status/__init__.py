"""The agent's local status surface: what it is doing, for ``status``, the dashboard and
Prometheus.

Two sides meet here, and only through HTTP on 127.0.0.1 and ``status.json``:

| side | module | what it does |
|---|---|---|
| daemon | ``state`` | ``AgentState``: the jobs, the link to the backend, a JSON-ready snapshot |
| daemon | ``watch`` | one reader's view of the changes (``AgentState.watch``) |
| daemon | ``uploads`` | each artifact upload's bytes, rate and time left |
| daemon | ``server`` | serves the status API inside the agent's loop; writes ``status.json`` |
| daemon | ``routes`` | the status API's endpoints and its loopback-and-token guard |
| daemon | ``events`` | the server-sent event stream (``GET /v1/events``) |
| daemon | ``metrics`` | the Prometheus collector (``GET /metrics``) |
| daemon | ``usage`` | the machine's load now (``GET /v1/resources``) |
| reader | ``client`` | ``StatusClient``: finds the running agent and talks to its API |
| reader | ``text`` | the snapshot as lines of text, durations (``status`` and the dashboard) |
| shared | ``file`` | ``status.json``: the port and token the daemon writes and readers read |

Only the daemon side imports starlette, uvicorn and prometheus_client (the daemon
imports it when it starts); the reader side needs only httpx, so ``training-agent
status`` starts fast. The commands that use the reader side (``status``, ``drain``,
``resume``, ``cancel``) are in ``training_agent.commands.status``.
"""
