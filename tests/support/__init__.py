"""Helpers shared by the test suites, in one place: real processes, fakes, factories.

| module | what it gives |
|---|---|
| ``backend`` | the real backend as a subprocess (``start_backend``, ``BackendProcess``) |
| ``agent`` | the real agent as a subprocess, the way a user runs it |
| ``e2e`` | users, keys, jobs and the owner's view of a job, for end-to-end tests |
| ``child`` | a child program with test modes (``print-lines``, ``ignore-sigterm``...) |
| ``executor`` | the child's argv, command jobs, a recording sink, polling helpers |
| ``fake_backend`` | a scripted fake of the agent API at the transport (unit tests) |
| ``fake_status`` | a fake status source and snapshots for the dashboard |
| ``fake_keyring`` | in-memory keyring backends (working, locked, none) |
| ``fake_nvml`` | the few NVML calls the agent makes, for two GPUs |
| ``service`` | a recording fake command runner and service specs |
| ``secret_service`` | ``login``/``logout`` against a real Secret Service |
| ``terminal`` | a real terminal (tmux) for full-screen commands |
| ``crowd`` | simulated agents over real HTTP (benchmarks, the drain test) |
| ``fault_proxy`` | a fault-injecting HTTP proxy process between the agent and the backend |

Fixtures stay in the ``conftest.py`` files, where pytest finds them.
"""
