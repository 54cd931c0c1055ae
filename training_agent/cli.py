"""The ``training-agent`` command line; thin: parse, build the settings once, hand over."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from training_agent import __version__
from training_agent.config import Settings, load_settings
from training_agent.errors import (
    AgentNotRunningError,
    AgentOutdatedError,
    ConfigError,
    TrainingAgentError,
)
from training_agent.paths import AgentPaths


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    given = sys.argv[1:] if argv is None else list(argv)
    if not given:  # double-click start: set up when unconfigured, else watch the agent
        from training_agent.commands.dashboard import double_click_args

        given = double_click_args(AgentPaths.from_env())
    args = parser.parse_args(given)
    args.argv = given
    try:
        return int(args.handler(args))
    except TrainingAgentError as exc:
        print(f"training-agent: {exc}", file=sys.stderr)
        if isinstance(exc, AgentNotRunningError):
            return 3
        if isinstance(exc, AgentOutdatedError):
            return 5
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="training-agent",
        description="Runs fine-tuning jobs from a training platform on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"training-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser(
        "start",
        help="run the agent in the foreground until stopped",
        epilog="exit codes: 0 stopped (a signal, --max-jobs, --idle-exit), 1 error, "
        "2 invalid settings, 4 the platform revoked this agent (do not restart it), "
        "5 the platform needs a newer agent (download and install it first)",
    )
    start.add_argument("--backend-url", help="the platform's URL (env BACKEND_URL)")
    start.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
    start.add_argument(
        "--allow-command-jobs",
        action="store_const",
        const=True,
        help="run jobs of type 'command' (arbitrary programs); off by default",
    )
    start.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="exit (code 0) after SECONDS without a job",
    )
    start.add_argument(
        "--max-concurrent-jobs", type=int, metavar="N", help="run up to N jobs at a time"
    )
    start.add_argument("--gpus", metavar="all|none|0,1", help="the GPUs jobs may use")
    start.add_argument("--cancel-grace-seconds", type=float, metavar="S")
    start.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    start.add_argument(
        "--dashboard",
        action="store_true",
        help="run the agent in the background of this terminal and show its dashboard",
    )
    start.set_defaults(handler=_start)

    demo = commands.add_parser(
        "demo", help="run a backend, an agent and one real training job on this machine"
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary directory")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the backend up and print the page's URL with a one-time sign-in",
    )
    demo.add_argument(
        "--port", type=int, default=0, help="the backend's port (default: a free one)"
    )
    demo.add_argument(
        "--trainer",
        choices=("auto", "hf", "logreg"),
        default="auto",
        help="the job: the Hugging Face trainer when installed (auto), or the quick "
        "logistic-regression demo",
    )
    demo.set_defaults(handler=_demo)

    runtime = commands.add_parser("runtime", help="the training runtime (torch, transformers)")
    runtime_commands = runtime.add_subparsers(dest="runtime_command", required=True)
    runtime_setup = runtime_commands.add_parser(
        "setup", help="create the managed venv the built-in trainer runs in, and record it"
    )
    runtime_setup.add_argument(
        "--cuda", default="auto", metavar="auto|cpu|cu12x", help="which torch build (auto)"
    )
    runtime_setup.set_defaults(handler=_runtime_setup)

    status = commands.add_parser("status", help="show what the running agent is doing")
    status.add_argument("--json", action="store_true", help="print the full status as JSON")
    status.set_defaults(handler=_status)
    dashboard = commands.add_parser(
        "dashboard", help="watch and steer the running agent in a full-screen terminal view"
    )
    dashboard.set_defaults(handler=_dashboard)
    setup = commands.add_parser(
        "setup", help="the interactive setup screen (a double-click runs it when unconfigured)"
    )
    setup.set_defaults(handler=_setup)
    for action, text in (
        ("drain", "stop claiming new jobs (running jobs finish)"),
        ("resume", "claim new jobs again after a drain"),
    ):
        command = commands.add_parser(action, help=text)
        command.set_defaults(handler=_control, action=action, job_id=None)
    cancel = commands.add_parser("cancel", help="cancel a job running on this machine")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.set_defaults(handler=_control, action="cancel")

    login = commands.add_parser("login", help="store the API key in the OS keyring")
    login.add_argument("--backend-url", help="the platform's URL (env BACKEND_URL)")
    login.add_argument(
        "--api-key-stdin", action="store_true", help="read the key from stdin, not a prompt"
    )
    login.add_argument(
        "--credential-store",
        choices=["keyring", "file"],
        default="auto",
        help="force the OS keyring or the owner-only file (default: keyring when usable)",
    )
    login.set_defaults(handler=_login)
    logout = commands.add_parser("logout", help="remove the stored API key")
    logout.add_argument("--backend-url", help="the platform's URL (env BACKEND_URL)")
    logout.set_defaults(handler=_logout)

    install = commands.add_parser(
        "install", help="check the key, store it, write the settings and the launcher"
    )
    install.add_argument("--backend-url", help="the platform's URL (env BACKEND_URL)")
    install.add_argument(
        "--api-key-stdin", action="store_true", help="read the key from stdin (env API_KEY)"
    )
    install.add_argument("--yes", action="store_true", help="ask nothing; fail if input is missing")
    install.add_argument("--service", choices=["user", "system", "none"], default="user")
    install.add_argument("--credential-store", choices=["keyring", "file"], default="auto")
    install.set_defaults(handler=_install)
    uninstall = commands.add_parser("uninstall", help="remove the launcher (and with --purge all)")
    uninstall.add_argument("--backend-url", help="whose stored key --purge removes")
    uninstall.add_argument(
        "--purge", action="store_true", help="also remove the key, settings, state, logs, data"
    )
    uninstall.set_defaults(handler=_uninstall)

    _service_parser(commands)
    doctor = commands.add_parser(
        "doctor", help="check the backend, TLS, key, clock, keyring, service, GPU and disk"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument("--system", action="store_true", help="check the system service")
    doctor.set_defaults(handler=_doctor)

    version = commands.add_parser(
        "version", help="print the version, commit, Python, platform and whether frozen"
    )
    version.set_defaults(handler=_version)
    return parser


def _service_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = commands.add_parser(
        "service", help="the background service (systemd, launchd, Windows Task Scheduler)"
    )
    actions = service.add_subparsers(dest="service_action", required=True, metavar="ACTION")
    for action, text in (
        ("install", "write the service definition, enable and start it"),
        ("uninstall", "stop the service and remove its definition"),
        ("start", "start the service"),
        ("stop", "stop the service (the agent drains first)"),
        ("restart", "restart the service"),
        ("status", "whether the service runs (exit code 3 when it does not)"),
        ("logs", "show the service's log"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument(
            "--system", action="store_true", help="the systemd system service (Linux, root)"
        )
        command.set_defaults(handler=_service, lines=50, follow=False)
        if action == "logs":
            command.add_argument("-n", "--lines", type=int, default=50, metavar="N")
            command.add_argument("-f", "--follow", action="store_true")
    run = actions.add_parser("run", help="run the agent as launchd and Windows run it")
    run.add_argument(
        "--restart-on-failure", action="store_true", help="start it again after an error exit"
    )
    run.set_defaults(handler=_service_run)


def _settings(args: argparse.Namespace, paths: AgentPaths) -> Settings:
    flags = {
        "backend_url": args.backend_url,
        "max_jobs": args.max_jobs,
        "idle_exit_seconds": args.idle_exit,
        "max_concurrent_jobs": args.max_concurrent_jobs,
        "gpus": args.gpus,
        "allow_command_jobs": args.allow_command_jobs,
        "cancel_grace_seconds": args.cancel_grace_seconds,
        "log_level": args.log_level,
    }
    return load_settings(config_file=paths.config_file, **flags)


def _start(args: argparse.Namespace) -> int:
    paths = AgentPaths.from_env()
    settings = _settings(args, paths)
    if args.dashboard:
        from training_agent.commands.dashboard import has_terminal, start_with_dashboard

        if has_terminal():
            return start_with_dashboard(paths, [a for a in args.argv[1:] if a != "--dashboard"])
        print(
            "training-agent: no terminal for the dashboard; running the agent alone",
            file=sys.stderr,
        )
    from training_agent import __version__
    from training_agent.update.guard import guarded_start

    def start() -> int:
        from training_agent.agent import run_agent  # the daemon's imports, only when needed

        return asyncio.run(run_agent(settings, paths))

    # A new build on trial that fails to start is rolled back (update/guard.py).
    return guarded_start(start, state_dir=paths.state_dir, version=__version__)


def _dashboard(args: argparse.Namespace) -> int:
    from training_agent.commands.dashboard import dashboard_command

    return dashboard_command(AgentPaths.from_env())


def _setup(args: argparse.Namespace) -> int:
    from training_agent.commands.dashboard import setup_command

    return setup_command(AgentPaths.from_env())


def _status(args: argparse.Namespace) -> int:
    from training_agent.commands.status import status_command

    return status_command(AgentPaths.from_env().status_file, as_json=args.json)


def _control(args: argparse.Namespace) -> int:
    from training_agent.commands.status import control_command

    return control_command(AgentPaths.from_env().status_file, args.action, args.job_id)


def _login(args: argparse.Namespace) -> int:
    from training_agent.commands.login import login_command

    return login_command(
        AgentPaths.from_env(),
        backend_url=args.backend_url,
        api_key_stdin=args.api_key_stdin,
        store=args.credential_store,
    )


def _logout(args: argparse.Namespace) -> int:
    from training_agent.commands.login import logout_command

    return logout_command(AgentPaths.from_env(), backend_url=args.backend_url)


def _install(args: argparse.Namespace) -> int:
    from training_agent.commands.install import Installer, InstallOptions

    options = InstallOptions(
        backend_url=args.backend_url,
        api_key_stdin=args.api_key_stdin,
        yes=args.yes,
        service=args.service,
        credential_store=args.credential_store,
    )
    return Installer.for_this_process().install(options)


def _uninstall(args: argparse.Namespace) -> int:
    from training_agent.commands.install import Installer

    return Installer.for_this_process().uninstall(purge=args.purge, backend_url=args.backend_url)


def _service(args: argparse.Namespace) -> int:
    from training_agent.commands.service import manager_for, service_command

    manager = manager_for(AgentPaths.from_env(), system=args.system)
    return service_command(manager, args.service_action, lines=args.lines, follow=args.follow)


def _service_run(args: argparse.Namespace) -> int:
    from training_agent import __version__
    from training_agent.commands.service import run_service, start_agent
    from training_agent.update.guard import guarded_start

    paths = AgentPaths.from_env()
    # Each start goes through the guard, as `start` does: a new build on trial that keeps
    # failing is rolled back, not restarted forever (update/guard.py).
    return run_service(
        lambda: guarded_start(
            lambda: start_agent(paths), state_dir=paths.state_dir, version=__version__
        ),
        restart_on_failure=args.restart_on_failure,
        say=lambda line: print(line, file=sys.stderr),
    )


def _doctor(args: argparse.Namespace) -> int:
    from training_agent.commands.doctor import doctor_command

    return doctor_command(AgentPaths.from_env(), as_json=args.json, system=args.system)


def _runtime_setup(args: argparse.Namespace) -> int:
    from training_agent.commands.runtime_setup import setup_runtime

    return setup_runtime(AgentPaths.from_env(), cuda=args.cuda)


def _version(_args: argparse.Namespace) -> int:
    from training_agent.commands.version import version_command

    return version_command()


def _demo(args: argparse.Namespace) -> int:
    from training_agent.commands.demo import run_demo

    return asyncio.run(
        run_demo(keep=args.keep, serve=args.serve, port=args.port, trainer=args.trainer)
    )
