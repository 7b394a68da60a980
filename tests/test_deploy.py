"""deploy/: every file parses, and names only real subcommands, settings, routes and ports.

Each check is a function that returns a list of problems, so the last tests can show that
every check fails on a broken copy of the files (a misspelt subcommand, an unknown setting,
a probe on a path the receiver or the dispatcher's ops server does not serve, a port that
disagrees, a short stop timeout).

`served` maps each role with HTTP to its GET paths: the receiver app's route table, and the
route table of the standalone dispatcher's ops server (TASKHOOK_DISPATCHER_PORT).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import difflib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
import yaml

from taskhook.cli import _parser
from taskhook.core.errors import ConfigError
from taskhook.core.settings import Settings, load_settings
from taskhook.dispatcher.loop import Dispatcher
from taskhook.dispatcher.ops_server import create_ops_app
from taskhook.receiver.app import create_app
from tests.conftest import INGEST_SECRET, SECRET_KEY

pytestmark = pytest.mark.deploy  # the deploy/ files and their tools

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CONTAINERFILE = DEPLOY / "Containerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV = DEPLOY / "compose.env.example"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
UNITS = ("taskhook-receiver.service", "taskhook-dispatcher.service")
SYSTEMD_ENV = SYSTEMD / "taskhook.env.example"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SECRET_SETTINGS = {"TASKHOOK_DATABASE_URL", "TASKHOOK_INGEST_SECRET", "TASKHOOK_SMTP_URL"}
ROLES_WITH_HTTP = ("receiver", "dispatcher")
Served = dict[str, set[str]]  # role -> the GET paths it serves


def _deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _yaml_files() -> list[Path]:
    return [p for p in _deploy_files() if p.suffix in (".yaml", ".yml")]


# --- parsers --------------------------------------------------------------------------


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    return out


def runtime_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that runs)."""
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments: the JSON (exec) form, else split like a shell."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in runtime_stage(instructions):
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def systemd_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file: section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, eq, value = line.partition("=")
        assert eq and current is not None and re.fullmatch(r"[A-Za-z]+", key), (
            f"line {number}: not `Key=value` inside a [Section]: {raw!r}"
        )
        current.setdefault(key, []).append(value.strip())
    return sections


def env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines (an EnvironmentFile or a compose .env); comments skipped."""
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, eq, value = line.partition("=")
            assert eq, f"not KEY=VALUE: {raw!r}"
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env and (env[name] or op not in (":-", ":?")):
            return env[name]
        assert "?" not in op, f"${{{name}}} is required but not set: {arg}"
        return arg

    text = re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, str(value))
    return text.replace("$$", "$")


def seconds(text: str | int | float) -> float:
    """A duration: 30, "30s", "1m30s", "1min 30s", "500ms"."""
    if isinstance(text, int | float):
        return float(text)
    units = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip())
    assert parts and all(u in units for _, u in parts), f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def filled_in(env: dict[str, str]) -> dict[str, str]:
    """The examples as a user fills them in: REPLACE_ME secrets become real ones (as
    shipped they are refused at start, which test_placeholders_stop_the_start checks)."""
    real = {"TASKHOOK_INGEST_SECRET": INGEST_SECRET, "TASKHOOK_SECRET_KEY": SECRET_KEY}
    return {**env, **{k: v for k, v in real.items() if "REPLACE_ME" in env.get(k, "")}}


def settings_from_env(env: dict[str, str], *, as_shipped: bool = False) -> Settings:
    """Settings as the process would build them from exactly this environment."""
    env = env if as_shipped else filled_in(env)
    saved = {k: v for k, v in os.environ.items() if k.startswith("TASKHOOK_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("TASKHOOK_")})
    try:
        return load_settings()
    finally:
        for key in [k for k in os.environ if k.startswith("TASKHOOK_")]:
            del os.environ[key]
        os.environ.update(saved)


def settings_problems(where: str, env: dict[str, str]) -> tuple[list[str], Settings | None]:
    try:
        return [], settings_from_env(env)
    except ConfigError as exc:
        return [f"{where}: {exc}"], None


# --- what the code really offers --------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser | None = None) -> set[str]:
    """Every subcommand word (nested ones included) of the `taskhook` parser."""
    parser = parser or _parser()
    names: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names |= {name} | subcommands(sub)
    return names


def argv_problem(argv: list[str]) -> str | None:
    """None if `taskhook <argv>` parses (as main() would parse it), else why not."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code != 0:  # --version and --help exit 0
            why = (stderr.getvalue().strip().splitlines() or ["does not parse"])[-1]
            return f"`taskhook {' '.join(argv)}`: {why}"
    return None


def _get_paths(app: aiohttp.web.Application) -> set[str]:
    return {
        route.resource.canonical
        for route in app.router.routes()
        if route.method in ("GET", "*") and route.resource is not None
    }


def receiver_get_paths() -> set[str]:
    """The GET routes of the receiver app, read from its route table (no database)."""
    return _get_paths(
        create_app(
            Settings(database_url="unused"),
            "postgresql://unused/unused",
            ingest_secret=INGEST_SECRET,
        )
    )


def dispatcher_get_paths() -> set[str]:
    """The GET routes of `taskhook dispatcher`'s ops server (no database, no loop)."""
    settings = Settings(database_url="unused")
    pool = cast(asyncpg.Pool, None)  # only the route table is read
    return _get_paths(
        create_ops_app(settings, pool, Dispatcher(pool, "postgresql://unused/unused", settings))
    )


def served_paths() -> Served:
    return {"receiver": receiver_get_paths(), "dispatcher": dispatcher_get_paths()}


def role_port(role: str, settings: Settings) -> int:
    """The port a role's HTTP listens on (the dispatcher's: 0 means it has none)."""
    return settings.dispatcher_port if role == "dispatcher" else settings.port


# --- checks that scan every file ----------------------------------------------------------

SETTING_NAME = re.compile(r"\bTASKHOOK_[A-Z0-9_]+\b")


def unknown_settings(text: str) -> set[str]:
    fields = {f"TASKHOOK_{name.upper()}" for name in Settings.model_fields}
    return set(SETTING_NAME.findall(text)) - fields


SHELL_SEPARATORS = ("&&", "||", ";", "|")


def taskhook_argvs_in(argv: list[str]) -> Iterator[list[str]]:
    """From one argv (or shell words), the arguments of every `taskhook` it runs: a word
    in command position whose base name is taskhook; `sh -c "..."` strings are searched."""
    commands: list[list[str]] = [[]]
    for word in argv:
        if word in SHELL_SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    for command in commands:
        if command and command[0].rsplit("/", 1)[-1] == "taskhook":
            yield command[1:]
            continue
        for word in command[1:]:
            if " " in word:
                with contextlib.suppress(ValueError):  # not shell words (e.g. Python code)
                    yield from taskhook_argvs_in(shlex.split(word.replace(";", " ; ")))


def command_problems(argvs: Iterable[list[str]]) -> list[str]:
    return [
        p
        for argv in argvs
        for invocation in taskhook_argvs_in(argv)
        if (p := argv_problem(invocation))
    ]


def loose_command_problems(text: str) -> list[str]:
    """Prose and comments: `taskhook X` in backticks must parse; a bare `taskhook X` whose
    X is close to, but not, a subcommand is a misspelling."""
    problems = [
        p
        for span in re.findall(r"`taskhook ([^`]*)`", text)
        if (p := argv_problem(shlex.split(span)))
    ]
    real = subcommands()
    for word in re.findall(r"(?<![\w./=:-])taskhook[ \t]+([a-z][a-z-]*)", text):
        if word not in real and difflib.get_close_matches(word, real, n=1, cutoff=0.75):
            problems.append(f"`taskhook {word}`: not a subcommand (misspelt?)")
    return problems


def probe_path_problems(
    paths: Iterable[str], served: set[str], role: str = "receiver"
) -> list[str]:
    return [f"{path}: the {role} serves no GET {path}" for path in paths if path not in served]


LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?::(\d+))?(/[\w./-]*)?")


# --- per-file checks ---------------------------------------------------------------------


def force_included() -> list[str]:
    """The files outside the package that the wheel ships (hatch's force-include)."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    return list(build["targets"]["wheel"]["force-include"])


def containerfile_problems(instructions: list[tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    stage = runtime_stage(instructions)
    words = dict(stage)
    if not words.get("FROM", "").startswith("python:3.11-slim"):
        problems.append(f"runtime base is {words.get('FROM')!r}, not python:3.11-slim")
    if not any(w == "RUN" and re.search(r"pip install[^&;]* \.(\s|$)", a) for w, a in instructions):
        problems.append("no `pip install .` of the repository")
    user = words.get("USER", "root").split(":")[0]
    if user in ("", "root", "0"):
        problems.append(f"runs as {user or 'root'}")
    for word, args in instructions:
        if word == "COPY" and "--from" not in args:
            problems += [
                f"COPY {src}: no such path"
                for src in shlex.split(args)[:-1]
                if not (ROOT / src).exists()
            ]
    copied = {Path(src) for w, a in instructions if w == "COPY" for src in shlex.split(a)[:-1]}
    problems += [
        f"{src}: the wheel ships it (pyproject force-include) but it is not copied"
        for src in force_included()
        if Path(src) not in copied
    ]
    if exec_form(words.get("CMD", "[]")) != ["taskhook", "serve"]:
        problems.append(f"CMD is {words.get('CMD')}, not taskhook serve")
    found, settings = settings_problems("Containerfile ENV", image_env(instructions))
    return problems + found + (image_port_problems(stage, settings) if settings else [])


def image_port_problems(stage: list[tuple[str, str]], settings: Settings) -> list[str]:
    problems = []
    exposed = {int(p.split("/")[0]) for w, a in stage if w == "EXPOSE" for p in a.split()}
    listens = {settings.port, settings.dispatcher_port} - {0}
    if exposed != listens:
        problems.append(f"EXPOSE {exposed} but the image listens on {listens}")
    if settings.host in LOOPBACK:
        problems.append(f"TASKHOOK_HOST={settings.host}: unreachable from outside")
    return problems


def compose_env(
    service: dict[str, Any], example: dict[str, str], base: dict[str, str]
) -> dict[str, str]:
    env = dict(base)
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.partition("=")[::2] for item in given)
    env.update({k: interpolate(v, example) for k, v in given.items()})
    return env


def compose_healthcheck_problems(
    name: str, service: dict[str, Any], settings: Settings, served: set[str]
) -> list[str]:
    """A receiver or dispatcher healthcheck GETs a path its role serves, on its port."""
    port = role_port(name, settings)
    test = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
    urls = LOCAL_URL.findall(test)
    if not urls:
        return [f"{name}: no healthcheck on http://127.0.0.1:{port}/readyz"]
    problems = []
    for url_port, path in urls:
        if int(url_port or 80) != port:
            problems.append(f"{name} healthcheck probes port {url_port or 80}, not {port}")
        problems += probe_path_problems([path or "/"], served, name)
    return problems


def compose_service_problems(
    name: str, service: dict[str, Any], settings: Settings, served: Served
) -> list[str]:
    problems = []
    command = service.get("command", [])
    argv = command if isinstance(command, list) else shlex.split(command)
    if name == "receiver":
        targets = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
        if targets != {settings.port}:
            problems.append(
                f"receiver publishes container port {targets}, listens on {settings.port}"
            )
        if settings.host in LOOPBACK:
            problems.append(f"receiver: TASKHOOK_HOST={settings.host} is unreachable")
    if name in ROLES_WITH_HTTP:
        problems += compose_healthcheck_problems(name, service, settings, served[name])
        grace = seconds(service.get("stop_grace_period", "10s"))
        if grace <= settings.shutdown_grace:
            problems.append(f"{name}: stop_grace_period {grace}s <= shutdown grace")
        if argv[-1:] != [name]:
            problems.append(f"{name} runs {argv}, not `taskhook {name}`")
    return problems


def compose_problems(
    compose: dict[str, Any], example: dict[str, str], base: dict[str, str], served: Served
) -> list[str]:
    services = compose.get("services", {})
    problems = [
        f"no service {s}" for s in ("postgres", "receiver", "dispatcher") if s not in services
    ]
    postgres = services.get("postgres", {})
    if postgres.get("image") != "postgres:16" or "pg_isready" not in str(
        postgres.get("healthcheck")
    ):
        problems.append("postgres: not postgres:16 with a pg_isready healthcheck")
    volumes = {str(v).split(":")[0] for v in postgres.get("volumes", [])}
    if not volumes & set(compose.get("volumes") or {}):
        problems.append("postgres: no named volume for its data")
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            if dep not in services:
                problems.append(f"{name} depends on a missing service {dep}")
            elif dep == "postgres" and cond.get("condition") != "service_healthy":
                problems.append(f"{name} does not wait for a healthy postgres")
        build = service.get("build")
        if build and not (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file():
            problems.append(f"{name}: build file {build['dockerfile']} not found")
        if name == "postgres":
            continue
        problems_env, settings = settings_problems(
            f"compose {name}", compose_env(service, example, base)
        )
        problems += problems_env
        if settings is not None:
            problems += compose_service_problems(name, service, settings, served)
    return problems


def k8s_containers(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
            return doc["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]
    raise AssertionError(f"no Deployment {name}")


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def k8s_env(
    docs: list[dict[str, Any]], container: dict[str, Any], base: dict[str, str]
) -> dict[str, str]:
    env = dict(base)
    for source in container.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source and (doc := _named(docs, kind, source[ref]["name"])):
                data = doc.get("data") or doc.get("stringData") or {}
                env.update({k: str(v) for k, v in data.items()})
    env.update({e["name"]: str(e.get("value", "")) for e in container.get("env", [])})
    return env


def k8s_reference_problems(docs: list[dict[str, Any]]) -> list[str]:
    problems = []
    named = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]
        if doc["spec"]["selector"]["matchLabels"].items() - pod["metadata"]["labels"].items():
            problems.append(f"{doc['metadata']['name']}: selector does not match its pods")
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom", []):
                for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if ref in source and (kind, source[ref]["name"]) not in named:
                        problems.append(f"envFrom names a missing {kind} {source[ref]['name']}")
            resources = container.get("resources", {})
            if not (resources.get("requests") and resources.get("limits")):
                problems.append(f"{container['name']}: no resource requests and limits")
    for doc in docs:
        if doc["kind"] == "ConfigMap" and (leaked := set(doc.get("data", {})) & SECRET_SETTINGS):
            problems.append(f"secret settings in a ConfigMap: {sorted(leaked)}")
    return problems


def k8s_probe_problems(
    container: dict[str, Any], ports: dict[str, int], port: int, served: set[str], role: str
) -> list[str]:
    """Readiness on /readyz, liveness on /healthz, each on a served path and the real port."""
    problems = []
    wanted = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": None}
    for probe_name, path in wanted.items():
        probe = container.get(probe_name, {}).get("httpGet")
        if probe is None:
            if path is not None:
                problems.append(f"{role} has no HTTP {probe_name}")
            continue
        if path is not None and probe["path"] != path:
            problems.append(f"{role} {probe_name} probes {probe['path']}, not {path}")
        problems += probe_path_problems([probe["path"]], served, role)
        if ports.get(probe["port"], probe["port"]) != port:
            problems.append(f"{role} {probe_name} probes port {probe['port']}")
    return problems


def k8s_scrape_problems(
    docs: list[dict[str, Any]], role: str, port: int, served: set[str]
) -> list[str]:
    """Prometheus annotations that name the role's port and a path it serves."""
    annotations = k8s_pod(docs, f"taskhook-{role}")["metadata"].get("annotations", {})
    problems = probe_path_problems(
        [annotations.get("prometheus.io/path", "/metrics")], served, role
    )
    if str(annotations.get("prometheus.io/port", port)) != str(port):
        problems.append(f"prometheus.io/port disagrees with the {role}'s port {port}")
    if str(annotations.get("prometheus.io/scrape")) != "true":
        problems.append(f"{role}: no prometheus.io/scrape annotation")
    return problems


def k8s_pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
            return doc["spec"]["template"]  # type: ignore[no-any-return]
    raise AssertionError(f"no Deployment {name}")


def k8s_dispatcher_problems(
    docs: list[dict[str, Any]], settings: Settings, served: set[str]
) -> list[str]:
    """The ops server: its containerPort, probes and scrape annotations agree with
    TASKHOOK_DISPATCHER_PORT, and every path is one it serves."""
    port = settings.dispatcher_port
    if port == 0:
        return ["dispatcher: TASKHOOK_DISPATCHER_PORT=0, so nothing can probe or scrape it"]
    problems = []
    container = k8s_containers(docs, "taskhook-dispatcher")[0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if set(ports.values()) != {port}:
        problems.append(f"dispatcher containerPort {ports} but its ops server is on {port}")
    if settings.host in LOOPBACK:
        problems.append(f"dispatcher: TASKHOOK_HOST={settings.host} is unreachable to probes")
    problems += k8s_probe_problems(container, ports, port, served, "dispatcher")
    return problems + k8s_scrape_problems(docs, "dispatcher", port, served)


def k8s_receiver_problems(
    docs: list[dict[str, Any]], settings: Settings, served: set[str]
) -> list[str]:
    problems = []
    container = k8s_containers(docs, "taskhook-receiver")[0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if set(ports.values()) != {settings.port}:
        problems.append(f"receiver containerPort {ports} but it listens on {settings.port}")
    if settings.host in LOOPBACK:
        problems.append(f"receiver: TASKHOOK_HOST={settings.host} is unreachable")
    problems += k8s_probe_problems(container, ports, settings.port, served, "receiver")
    services = [d for d in docs if d["kind"] == "Service"]
    labels = k8s_pod(docs, "taskhook-receiver")["metadata"]["labels"]
    problems += k8s_scrape_problems(docs, "receiver", settings.port, served)
    for service in services:
        if service["spec"]["selector"].items() - labels.items():
            problems.append(f"Service {service['metadata']['name']} selects no receiver pod")
        for port in service["spec"]["ports"]:
            if ports.get(port["targetPort"], port["targetPort"]) != settings.port:
                problems.append(f"Service targetPort {port['targetPort']} is not the receiver's")
    return problems


def k8s_grace_problems(docs: list[dict[str, Any]], settings: dict[str, Settings]) -> list[str]:
    problems = []
    for doc in docs:
        if doc["kind"] == "Deployment":
            name = doc["metadata"]["name"]
            pod = doc["spec"]["template"]["spec"]
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if name in settings and grace <= settings[name].shutdown_grace:
                problems.append(f"{name}: terminationGracePeriodSeconds {grace} <= shutdown grace")
            security = pod.get("securityContext", {})
            if not security.get("runAsNonRoot") or security.get("runAsUser", 0) == 0:
                problems.append(f"{name}: not forced to run as non-root")
    return problems


def kubernetes_problems(
    docs: list[dict[str, Any]], base: dict[str, str], served: Served
) -> list[str]:
    kinds = sorted(d["kind"] for d in docs)
    problems = [f"no {k}" for k in ("ConfigMap", "Secret", "Service") if k not in kinds]
    if kinds.count("Deployment") != 2:
        problems.append(f"expected two Deployments, found {kinds.count('Deployment')}")
    problems += k8s_reference_problems(docs)
    secrets = next(
        (d.get("stringData") or d.get("data") or {} for d in docs if d["kind"] == "Secret"), {}
    )
    problems += [
        f"Secret lacks {k}"
        for k in sorted(SECRET_SETTINGS - {"TASKHOOK_SMTP_URL"})
        if k not in secrets
    ]
    settings: dict[str, Settings] = {}
    for name in ("taskhook-receiver", "taskhook-dispatcher"):
        container = k8s_containers(docs, name)[0]
        found, value = settings_problems(name, k8s_env(docs, container, base))
        problems += found
        if value is not None:
            settings[name] = value
        role = name.removeprefix("taskhook-")
        if (container.get("command", []) + container.get("args", []))[-1:] != [role]:
            problems.append(f"{name} does not run `taskhook {role}`")
    if "taskhook-receiver" in settings:
        problems += k8s_receiver_problems(docs, settings["taskhook-receiver"], served["receiver"])
    if "taskhook-dispatcher" in settings:
        problems += k8s_dispatcher_problems(
            docs, settings["taskhook-dispatcher"], served["dispatcher"]
        )
    return problems + k8s_grace_problems(docs, settings)


def systemd_problems(
    name: str, unit: dict[str, dict[str, list[str]]], env: dict[str, str]
) -> list[str]:
    service = unit.get("Service", {})
    problems = [f"{name}: no [{s}]" for s in ("Unit", "Service", "Install") if s not in unit]
    required = {
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }
    for key, value in required.items():
        if service.get(key, [None])[-1] != value:
            problems.append(f"{name}: {key}={service.get(key)} (want {value})")
    if service.get("User", ["root"])[-1] in ("root", "0"):
        problems.append(f"{name}: no dedicated User=")
    for line in service.get("Environment", []):
        env = {**env, **dict(w.partition("=")[::2] for w in shlex.split(line))}
    found, settings = settings_problems(name, env)
    problems += found
    if settings is not None:
        stop = seconds(service.get("TimeoutStopSec", ["90s"])[-1])
        if stop <= settings.shutdown_grace:
            problems.append(f"{name}: TimeoutStopSec={stop}s <= shutdown grace")
        if settings.dispatcher_port == settings.port:  # both units run on one host
            problems.append(
                f"{name}: TASKHOOK_DISPATCHER_PORT = TASKHOOK_PORT = {settings.port} on one host"
            )
    role = name.removeprefix("taskhook-").removesuffix(".service")
    if shlex.split(service.get("ExecStart", [""])[-1])[-1:] != [role]:
        problems.append(f"{name}: ExecStart does not run `taskhook {role}`")
    return problems


# --- loading the real files --------------------------------------------------------------


def load_all() -> dict[str, Any]:
    """Everything the checks read, parsed (each test gets its own copy to break)."""
    instructions = containerfile_instructions(CONTAINERFILE.read_text())
    docs = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    return {
        "containerfile": instructions,
        "image_env": image_env(instructions),
        "compose": yaml.safe_load(COMPOSE.read_text()),
        "compose_env": env_file(COMPOSE_ENV.read_text()),
        "k8s": docs,
        "units": {u: systemd_unit((SYSTEMD / u).read_text()) for u in UNITS},
        "systemd_env": env_file(SYSTEMD_ENV.read_text()),
    }


def structured_argvs(files: dict[str, Any]) -> list[list[str]]:
    """Every argv that some deploy file will run."""
    argvs = [
        exec_form(a)
        for w, a in files["containerfile"]
        if w in ("RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK")
    ]
    for service in files["compose"]["services"].values():
        command = service.get("command", [])
        argvs.append(command if isinstance(command, list) else shlex.split(command))
        argvs.append([str(t) for t in service.get("healthcheck", {}).get("test", [])])
    for doc in files["k8s"]:
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                argvs.append(c.get("command", []) + c.get("args", []))
    for unit in files["units"].values():
        for key, values in unit.get("Service", {}).items():
            if key.startswith("Exec"):
                argvs += [shlex.split(v.lstrip("-@+!:")) for v in values]
    return argvs


@pytest.fixture(scope="module")
def files() -> dict[str, Any]:
    return load_all()


@pytest.fixture(scope="module")
def served() -> Served:
    return served_paths()


# --- the checks, on the real files ---------------------------------------------------------


def test_deploy_holds_the_expected_files() -> None:
    for path in (CONTAINERFILE, COMPOSE, COMPOSE_ENV, SYSTEMD_ENV, K8S / "kustomization.yaml"):
        assert path.is_file(), path
    for unit in UNITS:
        assert (SYSTEMD / unit).is_file(), unit


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)
    if path.parent == K8S and path.name != "kustomization.yaml":
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out) if d)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Namespace", "Secret", "Service"]


def test_containerfile(files: dict[str, Any]) -> None:
    assert containerfile_problems(files["containerfile"]) == []


def test_compose(files: dict[str, Any], served: Served) -> None:
    problems = compose_problems(files["compose"], files["compose_env"], files["image_env"], served)
    assert problems == []


def test_kubernetes(files: dict[str, Any], served: Served) -> None:
    assert kubernetes_problems(files["k8s"], files["image_env"], served) == []


def test_placeholders_stop_the_start(files: dict[str, Any]) -> None:
    """A REPLACE_ME secret left in an example is refused at start, naming it."""
    secrets = next(d["stringData"] for d in files["k8s"] if d["kind"] == "Secret")
    for where, env in (
        ("compose.env.example", files["compose_env"]),
        ("taskhook.env.example", files["systemd_env"]),
        ("secret.yaml", secrets),
    ):
        for name in ("TASKHOOK_INGEST_SECRET", "TASKHOOK_SECRET_KEY"):
            assert "REPLACE_ME" in env[name], where
            only_this = {**filled_in(env), name: env[name]}
            with pytest.raises(ConfigError, match=name):
                settings_from_env(only_this, as_shipped=True)


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit(files: dict[str, Any], name: str) -> None:
    assert systemd_problems(name, files["units"][name], files["systemd_env"]) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd itself reads the units: unknown directives or sections are errors."""
    (tmp_path / "taskhook.env").write_text(SYSTEMD_ENV.read_text())
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        text = text.replace("/opt/taskhook/bin/taskhook", shutil.which("true") or "/bin/true")
        (tmp_path / unit).write_text(
            text.replace("/etc/taskhook/taskhook.env", str(tmp_path / "taskhook.env"))
        )
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    noise = [line for line in result.stderr.splitlines() if "taskhook" in line or "Unknown" in line]
    assert result.returncode == 0 and noise == [], result.stderr


def test_every_command_is_a_real_subcommand(files: dict[str, Any]) -> None:
    argvs = structured_argvs(files)
    invocations = [inv for argv in argvs for inv in taskhook_argvs_in(argv)]
    assert {inv[0] for inv in invocations if inv} >= {"serve", "receiver", "dispatcher", "migrate"}
    assert command_problems(argvs) == []
    for path in _deploy_files():
        assert loose_command_problems(path.read_text()) == [], path


def test_every_setting_named_is_real() -> None:
    for path in _deploy_files():
        assert unknown_settings(path.read_text()) == set(), path


def test_every_local_url_is_a_route(served: Served) -> None:
    """A local URL on the dispatcher's default ops port must be one of its routes; any
    other, one of the receiver's."""
    for role in ROLES_WITH_HTTP:
        assert {"/healthz", "/readyz", "/metrics"} <= served[role], role
    ops_port = Settings.model_fields["dispatcher_port"].default
    for path in _deploy_files():
        for port, url_path in LOCAL_URL.findall(path.read_text()):
            role = "dispatcher" if port and int(port) == ops_port else "receiver"
            assert probe_path_problems([url_path or "/"], served[role], role) == [], path


def probed_paths(files: dict[str, Any], role: str) -> set[str]:
    """Every path a deploy file probes or scrapes on this role."""
    container = k8s_containers(files["k8s"], f"taskhook-{role}")[0]
    paths = {
        container[p]["httpGet"]["path"]
        for p in ("readinessProbe", "livenessProbe", "startupProbe")
        if p in container
    }
    annotations = k8s_pod(files["k8s"], f"taskhook-{role}")["metadata"].get("annotations", {})
    paths.add(annotations.get("prometheus.io/path", "/metrics"))
    test = " ".join(map(str, files["compose"]["services"][role]["healthcheck"]["test"]))
    return paths | {p for _port, p in LOCAL_URL.findall(test)}


async def test_probe_paths_answer_200(
    files: dict[str, Any], http: aiohttp.ClientSession, base_url: str
) -> None:
    """The paths the probes use really answer 200 on a receiver with a database."""
    paths = probed_paths(files, "receiver")
    assert {"/readyz", "/healthz", "/metrics"} <= paths
    for path in sorted(paths):
        async with http.get(base_url + path) as resp:
            assert resp.status == 200, path


async def test_dispatcher_probe_paths_answer_200(
    files: dict[str, Any],
    aiohttp_server: Any,
    pool: asyncpg.Pool,
    dsn: str,
    http: aiohttp.ClientSession,
) -> None:
    """...and on the dispatcher's ops server, with a database and a fresh loop heartbeat."""
    paths = probed_paths(files, "dispatcher")
    assert {"/readyz", "/healthz", "/metrics"} <= paths
    settings = Settings(database_url="unused")
    app = create_ops_app(settings, pool, Dispatcher(pool, dsn, settings))
    server = await aiohttp_server(app, host="127.0.0.1")
    for path in sorted(paths):
        async with http.get(f"http://127.0.0.1:{server.port}{path}") as resp:
            assert resp.status == 200, path


# --- each check fails on a broken copy -------------------------------------------------------


def test_command_checks_catch_mistakes() -> None:
    assert command_problems([["taskhook", "recevier"]])
    assert command_problems([["/opt/taskhook/bin/taskhook", "serve", "--prot", "1"]])
    assert command_problems([["sh", "-c", "taskhook migrate && taskhook accounts"]])
    assert not command_problems(
        [["taskhook", "receiver", "--port", "9000"], ["taskhook", "--version"]]
    )
    assert loose_command_problems("# run `taskhook dispatch` here")
    assert loose_command_problems("# then taskhook recevier starts")
    assert not loose_command_problems("# taskhook stops on SIGTERM; `taskhook serve`")


def test_setting_and_path_checks_catch_mistakes(served: Served) -> None:
    assert unknown_settings("TASKHOOK_NO_SUCH=1 TASKHOOK_PORT=1") == {"TASKHOOK_NO_SUCH"}
    assert probe_path_problems(["/livez"], served["receiver"])
    assert probe_path_problems(["/v1/tasks"], served["dispatcher"], "dispatcher")
    assert settings_problems("x", {"TASKHOOK_PORT": "eighty"})[0]
    assert settings_problems("x", {"TASKHOOK_DISPATCHER_PORT": "eighty"})[0]


def test_containerfile_check_catches_mistakes(files: dict[str, Any]) -> None:
    base = files["containerfile"]

    def broken(word: str, old: str, new: str) -> list[str]:
        changed = [(w, a.replace(old, new) if w == word else a) for w, a in base]
        assert changed != base, (word, old)
        return containerfile_problems(changed)

    assert not containerfile_problems(base)
    assert broken("EXPOSE", "8080", "9090")
    assert broken("EXPOSE", "8081", "")
    assert broken("ENV", "TASKHOOK_DISPATCHER_PORT=8081", "TASKHOOK_DISPATCHER_PORT=9091")
    assert broken("ENV", "TASKHOOK_PORT=8080", "TASKHOOK_PORT=9090")
    assert broken("ENV", "TASKHOOK_HOST=0.0.0.0", "TASKHOOK_HOST=127.0.0.1")
    assert broken("ENV", "TASKHOOK_LOG_FORMAT=json", "TASKHOOK_LOG_FORMAT=xml")
    assert broken("USER", "10001:10001", "root")
    assert broken("CMD", '"serve"', '"serv"')
    assert broken("COPY", "schema.sql", "schema2.sql")
    assert broken("COPY", "migrations ./migrations", "taskhook ./taskhook")
    assert broken("FROM", "python:3.11-slim", "python:3.12")
    assert broken("RUN", "pip install .", "pip install taskhook")


def test_compose_check_catches_mistakes(files: dict[str, Any], served: Served) -> None:
    def broken(change: Any) -> list[str]:
        compose = copy.deepcopy(files["compose"])
        change(compose["services"])
        return compose_problems(compose, files["compose_env"], files["image_env"], served)

    def probe(role: str, old: str, new: str) -> Any:
        def change(services: dict[str, Any]) -> None:
            test = services[role]["healthcheck"]["test"]
            services[role]["healthcheck"]["test"] = [str(w).replace(old, new) for w in test]
            assert services[role]["healthcheck"]["test"] != test, (role, old)

        return change

    def own_env(role: str, **env: str) -> Any:
        """Change one service's environment only (compose's anchor shares the dict)."""

        def change(services: dict[str, Any]) -> None:
            services[role]["environment"] = {**services[role]["environment"], **env}

        return change

    assert not broken(lambda s: None)
    assert broken(lambda s: s["dispatcher"].pop("healthcheck"))
    assert broken(probe("dispatcher", ":8081/", ":8080/"))
    assert broken(probe("dispatcher", "/readyz", "/ready"))
    assert broken(probe("receiver", "/readyz", "/ready"))
    assert broken(probe("receiver", ":8080/", ":8081/"))
    assert broken(own_env("dispatcher", TASKHOOK_DISPATCHER_PORT="9091"))
    assert broken(own_env("dispatcher", TASKHOOK_DISPATCHER_PORT="0"))

    assert broken(lambda s: s["receiver"].update(ports=["8080:9090"]))
    assert broken(lambda s: s["receiver"]["environment"].update(TASKHOOK_PORT="9090"))
    assert broken(lambda s: s["receiver"]["environment"].update(TASKHOOK_HOST="127.0.0.1"))
    assert broken(lambda s: s["dispatcher"].update(stop_grace_period="10s"))
    assert broken(lambda s: s["dispatcher"].update(command=["taskhook", "receiver"]))
    assert broken(lambda s: s["dispatcher"]["depends_on"].update(pg={}))
    assert broken(lambda s: s["receiver"]["environment"].update(TASKHOOK_LOG_LEVEL="loud"))
    assert broken(lambda s: s["postgres"].pop("healthcheck"))


def test_kubernetes_check_catches_mistakes(files: dict[str, Any], served: Served) -> None:
    def broken(change: Any) -> list[str]:
        docs = copy.deepcopy(files["k8s"])
        by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        change(by_name)
        return kubernetes_problems(docs, files["image_env"], served)

    def receiver(d: dict[Any, Any]) -> dict[str, Any]:
        return d["Deployment", "taskhook-receiver"]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]

    assert broken(lambda d: d["ConfigMap", "taskhook-config"]["data"].update(TASKHOOK_PORT="9090"))
    assert broken(lambda d: receiver(d)["readinessProbe"]["httpGet"].update(path="/ready"))
    assert broken(lambda d: receiver(d)["livenessProbe"]["httpGet"].update(port=9090))
    assert broken(lambda d: receiver(d)["envFrom"][1]["secretRef"].update(name="nope"))
    assert broken(lambda d: receiver(d)["resources"].pop("limits"))
    assert broken(lambda d: d["Service", "taskhook-receiver"]["spec"]["selector"].update(x="y"))
    assert broken(
        lambda d: d["ConfigMap", "taskhook-config"]["data"].update(TASKHOOK_DATABASE_URL="x")
    )
    assert broken(
        lambda d: d["Deployment", "taskhook-dispatcher"]["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=5
        )
    )

    def dispatcher(d: dict[Any, Any]) -> dict[str, Any]:
        pod = d["Deployment", "taskhook-dispatcher"]["spec"]["template"]["spec"]
        return pod["containers"][0]  # type: ignore[no-any-return]

    def dispatcher_annotations(d: dict[Any, Any]) -> dict[str, Any]:
        pod = d["Deployment", "taskhook-dispatcher"]["spec"]["template"]
        return pod["metadata"]["annotations"]  # type: ignore[no-any-return]

    config = ("ConfigMap", "taskhook-config")
    assert not broken(lambda d: None)
    assert broken(lambda d: dispatcher(d)["readinessProbe"]["httpGet"].update(path="/ready"))
    assert broken(lambda d: dispatcher(d)["readinessProbe"]["httpGet"].update(path="/healthz"))
    assert broken(lambda d: dispatcher(d)["livenessProbe"]["httpGet"].update(path="/v1/tasks"))
    assert broken(lambda d: dispatcher(d)["livenessProbe"]["httpGet"].update(port=8080))
    assert broken(lambda d: dispatcher(d).pop("readinessProbe"))
    assert broken(lambda d: dispatcher(d).pop("ports"))
    assert broken(lambda d: dispatcher(d)["ports"][0].update(containerPort=8080))
    assert broken(lambda d: d[config]["data"].update(TASKHOOK_DISPATCHER_PORT="9091"))
    assert broken(lambda d: d[config]["data"].update(TASKHOOK_DISPATCHER_PORT="0"))
    assert broken(lambda d: dispatcher_annotations(d).update({"prometheus.io/port": "8080"}))
    assert broken(lambda d: dispatcher_annotations(d).update({"prometheus.io/path": "/m"}))
    assert broken(lambda d: dispatcher_annotations(d).pop("prometheus.io/scrape"))


def test_systemd_check_catches_mistakes(files: dict[str, Any]) -> None:
    unit = files["units"]["taskhook-dispatcher.service"]

    def broken(key: str, value: str, env: dict[str, str] | None = None) -> list[str]:
        changed = copy.deepcopy(unit)
        changed["Service"][key] = [value]
        return systemd_problems("taskhook-dispatcher.service", changed, env or files["systemd_env"])

    assert broken("TimeoutStopSec", "10s")
    assert broken(
        "TimeoutStopSec", "30s", {**files["systemd_env"], "TASKHOOK_SHUTDOWN_GRACE": "45"}
    )
    assert broken(
        "TimeoutStopSec", "30s", {**files["systemd_env"], "TASKHOOK_DISPATCHER_PORT": "8080"}
    )
    assert broken("ExecStart", "/opt/taskhook/bin/taskhook receiver")
    assert broken("User", "root")
    assert broken("ProtectSystem", "full")
    assert broken("Restart", "always")
    with pytest.raises(AssertionError):
        systemd_unit("[Service]\nthis is not a directive\n")
