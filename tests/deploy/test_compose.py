"""The docker compose deployment, checked statically (no Docker needed): docker-compose.yml, Dockerfile, .env.example,
and the example connections file the default secrets backend reads (secrets/connections.example.json).

Each rule is a `*_problems(...)` function returning what is wrong (empty when fine), so one test per rule can
state it and `test_checkers_reject_a_broken_compose_file` can prove the rules catch a deliberately broken copy.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cherry_sync import provider
from cherry_sync.context import PACER_CONN_ID, SMTP_CONN_ID, STORE_CONN_ID
from cherry_sync.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
REGISTRY_FILE = REPO / "include" / "practices.yml"
CONNECTIONS_EXAMPLE = REPO / "secrets" / "connections.example.json"
SECRETS_MOUNT = "/opt/airflow/secrets"
SECRETS_BACKEND_SETTINGS = ("AIRFLOW__SECRETS__BACKEND", "AIRFLOW__SECRETS__BACKEND_KWARGS")

AIRFLOW_COMPONENTS = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
REQUIRED_SERVICES = (*AIRFLOW_COMPONENTS, "postgres", "redis", "sync-store-db", "sandboxes", "mailpit")
ONE_SHOT = {"airflow-init"}
SHARED_SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
PRODUCT_MOUNTS = {"dags": "/opt/airflow/dags", "include": "/opt/airflow/include"}
CONN_TYPES = {"cherry": provider.CHERRY_CONN_TYPE, "crm": provider.CRM_CONN_TYPE}
WORKER = "airflow-worker"
SANDBOX_HOSTS = {"cherry": "http://sandboxes:8300", "crm": "http://sandboxes:8420"}
PLACEHOLDER = "change-me"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; "$$" is a literal "$".
VAR_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --- loading -------------------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # safe_load resolves anchors and `<<:` merge keys


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as docker compose reads an env file (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style variable substitution (the subset docker-compose.yml uses)."""

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        missing = not value if op in (":-", ":?") else value is None
        if not missing:
            return value
        if op and op.endswith("-"):
            return arg
        raise KeyError(f"${{{name}}} is not set ({arg or 'required'})")

    return VAR_REF.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def services(compose: dict) -> dict[str, dict]:
    return compose.get("services") or {}


def airflow_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in services(compose).items() if name in AIRFLOW_COMPONENTS}


def connection_vars(compose: dict) -> dict[str, dict[str, str]]:
    """AIRFLOW_CONN_* variable -> {service: raw value}, over every service."""
    found: dict[str, dict[str, str]] = {}
    for name, svc in services(compose).items():
        for key, value in environment(svc).items():
            if key.startswith("AIRFLOW_CONN_"):
                found.setdefault(key, {})[name] = value
    return found


def conn_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def product_connection_ids() -> set[str]:
    registry = load_registry(REGISTRY_FILE)
    from cherry_sync.maintenance import METADATA_DB_CONN_ID

    ids = {STORE_CONN_ID, PACER_CONN_ID, SMTP_CONN_ID, METADATA_DB_CONN_ID}
    for practice in registry.practices:
        ids |= {practice.cherry_conn_id, practice.crm_conn_id}
    return ids


def required_connection_ids() -> set[str]:
    """What the compose file itself defines: the deployment's own services (the practices' come from the backend)."""
    return {STORE_CONN_ID, SMTP_CONN_ID}


def practice_connection_vars() -> set[str]:
    """AIRFLOW_CONN_* names a practice's connection would have: its registry ids, and cherry_/crm_<slug>."""
    names = set()
    for practice in load_registry(REGISTRY_FILE).practices:
        slug = practice.slug.replace("-", "_")
        ids = {practice.cherry_conn_id, f"cherry_{slug}", f"crm_{slug}"}
        names |= {conn_var(conn_id) for conn_id in ids | ({practice.crm_conn_id} - {None})}
    return names


# --- the rules -----------------------------------------------------------------------------------------


def missing_service_problems(compose: dict) -> list[str]:
    return [f"service {name!r} is missing" for name in REQUIRED_SERVICES if name not in services(compose)]


def executor_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in airflow_services(compose).items():
        env = environment(svc)
        if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
            problems.append(f"{name}: AIRFLOW__CORE__EXECUTOR is {env.get('AIRFLOW__CORE__EXECUTOR')!r}")
        broker = env.get("AIRFLOW__CELERY__BROKER_URL", "")
        if not broker.startswith("redis://redis:"):
            problems.append(f"{name}: AIRFLOW__CELERY__BROKER_URL {broker!r} is not the redis service")
        if not env.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql"):
            problems.append(f"{name}: AIRFLOW__CELERY__RESULT_BACKEND is not the PostgreSQL metadata DB")
        if "@postgres:" not in env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""):
            problems.append(f"{name}: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not the postgres service")
    return problems


# A release tag: at least major.minor digits (16.13, 7.4.6, v1.28.4, slim-3.3.2-python3.11), not a moving one.
RELEASE_TAG = re.compile(r"(?:^|[^0-9])v?\d+\.\d+(?:\.\d+)?(?:[-.][A-Za-z0-9.]+)*$")
FLOATING_TAGS = {"latest", "stable", "edge", "main", "master", "nightly", "alpine", "bookworm", "slim"}


def image_pin_problem(image: str) -> str | None:
    if "$" in image:
        return f"{image!r}: the image is chosen by a variable, so it is not pinned here"
    reference, _, digest = image.partition("@")
    if digest:
        return None if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else f"{image!r}: malformed digest"
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # no tag (the colon, if any, was a registry port)
        return f"{image!r}: no tag (means latest)"
    if tag in FLOATING_TAGS or not RELEASE_TAG.search(tag):
        return f"{image!r}: tag {tag!r} is not an exact release"
    return None


def image_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        if "build" in svc:
            continue  # built here from the Dockerfile, whose FROM is checked by test_dockerfile_*
        image = svc.get("image")
        if not image:
            problems.append(f"{name}: neither image nor build")
        elif problem := image_pin_problem(image):
            problems.append(f"{name}: {problem}")
    return problems


def secret_reference_problems(compose: dict, env_example: dict[str, str]) -> list[str]:
    problems = []
    components = airflow_services(compose)
    for secret in SHARED_SECRETS:
        refs = {name: environment(svc).get(secret) for name, svc in components.items()}
        for name, ref in refs.items():
            if not ref:
                problems.append(f"{name}: {secret} is not set")
            elif not VAR_REF.fullmatch(ref):
                problems.append(f"{name}: {secret} is a literal, not a ${{VAR}} reference to .env")
            elif VAR_REF.fullmatch(ref)["name"] not in env_example:
                problems.append(
                    f"{name}: {secret} refers to ${{{VAR_REF.fullmatch(ref)['name']}}}, not in .env.example"
                )
        if len({ref for ref in refs.values() if ref}) > 1:
            problems.append(
                f"{secret}: the Airflow components do not share one reference: {sorted(set(refs.values()))}"
            )
    return problems


def healthcheck_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        if name in ONE_SHOT:
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test or test == ["NONE"]:
            problems.append(f"{name}: a long-running service without a healthcheck")
    return problems


def depends_on_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in airflow_services(compose).items():
        deps = svc.get("depends_on") or {}
        if not isinstance(deps, dict):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            if condition != wanted:
                problems.append(f"{name}: depends on {dep} with {condition!r}, expected {wanted}")
        for db in ("postgres", "redis"):
            if db not in deps:
                problems.append(f"{name}: does not wait for {db}")
        if name not in ONE_SHOT and "airflow-init" not in deps:
            problems.append(f"{name}: does not wait for airflow-init to complete")
    return problems


def mount_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in airflow_services(compose).items():
        mounts = {}
        for volume in svc.get("volumes") or []:
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                mounts[rest.split(":")[0]] = source
            else:
                mounts[volume.get("target")] = volume.get("source")
        for folder, target in PRODUCT_MOUNTS.items():
            if mounts.get(target) not in (f"./{folder}", folder, f"./{folder}/"):
                problems.append(f"{name}: ./{folder} is not mounted at {target}")
        # cherry_sync is installed in the image: a mounted copy on the path would shadow it (and its entry point's
        # connection forms would describe other code than the one that runs).
        if any(str(source).rstrip("/") in ("./plugins", "plugins") for source in mounts.values()):
            problems.append(f"{name}: ./plugins is mounted, shadowing the cherry_sync the image installs")
        if "/opt/airflow/plugins" in environment(svc).get("PYTHONPATH", "").split(":"):
            problems.append(f"{name}: PYTHONPATH puts /opt/airflow/plugins before the cherry_sync the image installs")
    return problems


def scaling_problems(compose: dict) -> list[str]:
    worker = services(compose).get(WORKER) or {}
    problems = []
    if "container_name" in worker:
        problems.append(f"{WORKER}: container_name prevents --scale")
    for port in worker.get("ports") or []:
        published = port.get("published") if isinstance(port, dict) else (str(port).split(":")[-2:-1] or [None])[0]
        if published:
            problems.append(f"{WORKER}: fixed host port {port!r} prevents --scale")
    return problems


def per_practice_connection_problems(compose: dict) -> list[str]:
    """No practice's connection in the compose file: 1,000 practices must not mean 2,000 environment lines."""
    forbidden = practice_connection_vars()
    return [
        f"{var} (in {', '.join(sorted(where))}): a practice's connection belongs in the secrets backend"
        for var, where in connection_vars(compose).items()
        if var in forbidden
    ]


def secrets_backend_problems(compose: dict, env_example: dict[str, str]) -> list[str]:
    """Every Airflow component has the same secrets backend; by default a connections file mounted read-only."""
    problems = []
    components = airflow_services(compose)
    for setting in SECRETS_BACKEND_SETTINGS:
        refs = {name: environment(svc).get(setting) for name, svc in components.items()}
        problems += [f"{name}: {setting} is not set" for name, ref in refs.items() if not ref]
        if len({ref for ref in refs.values() if ref}) > 1:
            problems.append(f"{setting}: the Airflow components do not share one value: {sorted(set(refs.values()))}")
    for name, svc in components.items():
        env = environment(svc)
        if not all(env.get(setting) for setting in SECRETS_BACKEND_SETTINGS):
            continue
        kwargs = json.loads(interpolate(env["AIRFLOW__SECRETS__BACKEND_KWARGS"], env_example))
        path = kwargs.get("connections_file_path", "")
        if not path.startswith(f"{SECRETS_MOUNT}/"):
            problems.append(
                f"{name}: the default backend's connections_file_path {path!r} is not under {SECRETS_MOUNT}"
            )
        mounts = [v for v in svc.get("volumes") or [] if isinstance(v, str) and v.split(":")[1:2] == [SECRETS_MOUNT]]
        if not mounts:
            problems.append(f"{name}: ./secrets is not mounted at {SECRETS_MOUNT}")
        elif not all(v.split(":")[0].rstrip("/") in ("./secrets", "secrets") and v.endswith(":ro") for v in mounts):
            problems.append(f"{name}: {mounts[0]!r}: the connections file must be ./secrets, mounted read-only")
    return problems


def unknown_connection_problems(compose: dict) -> list[str]:
    known = {conn_var(conn_id): conn_id for conn_id in product_connection_ids()}
    return [
        f"{var} (in {', '.join(sorted(where))}) names no connection the product uses"
        for var, where in connection_vars(compose).items()
        if var not in known
    ]


def missing_connection_problems(compose: dict) -> list[str]:
    problems = []
    for conn_id in sorted(required_connection_ids()):
        var = conn_var(conn_id)
        for name, svc in airflow_services(compose).items():
            if var not in environment(svc):
                problems.append(f"{name}: {var} is not defined (needed by the registry or the product)")
    return problems


# --- tests: docker-compose.yml -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


def test_required_services_exist(compose):
    assert missing_service_problems(compose) == [], "docker-compose.yml lacks services the deployment needs"


def test_celery_executor_with_redis_broker_and_postgres_metadata(compose):
    assert executor_problems(compose) == [], "every Airflow component must run CeleryExecutor on redis + postgres"


def test_sync_store_is_a_separate_postgres(compose):
    store = json.loads(
        interpolate(
            environment(services(compose)["airflow-worker"])[conn_var(STORE_CONN_ID)], {"SYNC_STORE_DB_PASSWORD": "x"}
        )
    )
    assert store["conn_type"] == "postgres", "the sync store runs on PostgreSQL in the deployment"
    assert store["host"] == "sync-store-db", f"the sync store must be its own server, not {store['host']!r}"
    assert services(compose)["sync-store-db"]["image"].startswith("postgres:"), "sync-store-db must be PostgreSQL"


def test_every_image_is_pinned(compose):
    assert image_problems(compose) == [], "images must name an exact release (or a digest)"


def test_airflow_components_share_secrets_from_env(compose, env_example):
    assert secret_reference_problems(compose, env_example) == [], (
        "Fernet key, JWT secret and api secret key must be one ${VAR} from .env, the same in every Airflow component"
    )


def test_every_long_running_service_has_a_healthcheck(compose):
    assert healthcheck_problems(compose) == [], "every service but airflow-init needs a healthcheck"


def test_airflow_components_wait_for_healthy_dependencies_and_init(compose):
    assert depends_on_problems(compose) == [], "depends_on must use service_healthy / service_completed_successfully"


def test_product_folders_mounted_in_every_airflow_component(compose):
    assert mount_problems(compose) == [], "dags/ and include/ mounted; the package comes from the image"


def test_worker_can_scale(compose):
    assert scaling_problems(compose) == [], "docker compose up --scale airflow-worker=N needs no fixed name or port"


def test_no_practice_connection_in_the_compose_file(compose):
    assert practice_connection_vars(), "the registry names no practice: the check would be empty"
    assert per_practice_connection_problems(compose) == [], "practices' connections come from the secrets backend"


def test_every_airflow_component_reads_the_secrets_backend_from_the_mounted_file(compose, env_example):
    assert secrets_backend_problems(compose, env_example) == [], (
        "workers, triggerer, dag-processor, api-server, scheduler and init must see the same practice connections"
    )


def test_the_default_backend_class_takes_the_kwargs_env_example_gives(env_example):
    """.env.example's backend and kwargs build a backend, as Airflow builds it, that reads the example file."""
    module, _, name = env_example["AIRFLOW_SECRETS_BACKEND"].rpartition(".")
    backend_class = getattr(importlib.import_module(module), name)
    kwargs = json.loads(env_example["AIRFLOW_SECRETS_BACKEND_KWARGS"])
    assert set(kwargs) == {"connections_file_path"}, kwargs
    backend = backend_class(**kwargs | {"connections_file_path": str(CONNECTIONS_EXAMPLE)})
    conn = backend.get_connection("crm_glow_aesthetics")
    assert conn is not None and conn.extra_dejson["location_id"], "the example file's PIT practice did not resolve"
    assert backend.get_connection("crm_no_such_practice") is None


def test_every_connection_variable_is_a_product_connection(compose):
    assert unknown_connection_problems(compose) == [], "an AIRFLOW_CONN_* that nothing reads is a typo or a leftover"


def test_every_needed_connection_is_defined(compose):
    assert missing_connection_problems(compose) == [], "the store, SMTP and every enabled practice need connections"


@pytest.fixture(scope="module")
def example_connections() -> dict[str, dict]:
    return json.loads(CONNECTIONS_EXAMPLE.read_text())


def test_connections_are_valid_json_pointing_at_the_sandboxes_by_default(compose, env_example, example_connections):
    env = environment(services(compose)["airflow-worker"])
    registry = load_registry(REGISTRY_FILE)
    for practice in registry.enabled():
        for kind, conn_id in (("cherry", practice.cherry_conn_id), ("crm", practice.crm_conn_id)):
            conn = example_connections[conn_id]
            assert conn["conn_type"] == CONN_TYPES[kind], f"{conn_id}: a {CONN_TYPES[kind]} connection"
            assert conn["host"] == SANDBOX_HOSTS[kind], f"{conn_id}: points at {conn['host']!r}, not the sandbox"
            assert conn["password"], f"{conn_id}: no API key / token"
            if kind == "crm":
                assert conn["extra"]["location_id"], f"{conn_id}: no location_id extra"
    smtp = json.loads(interpolate(env[conn_var(SMTP_CONN_ID)], env_example))
    assert smtp["host"] == "mailpit", "SMTP goes to Mailpit by default"
    assert "@" in smtp["extra"]["from_email"] and "@" in smtp["extra"]["ops_email"], "from_email and ops_email extras"
    pacer = json.loads(interpolate(env[conn_var(PACER_CONN_ID)], env_example))
    assert pacer["host"] == "redis", "API pacing is shared through the redis service"


def test_demo_credentials_are_the_sandboxes_own(compose, example_connections):
    """The example connections file's keys/tokens are what the seeded sandboxes generate: public demo values."""
    from sandbox.__main__ import build_parser, describe
    from sandbox.cherry import cli as cherry_cli
    from sandbox.cherry.app import create_app as create_cherry
    from sandbox.crm import cli as crm_cli
    from sandbox.crm.app import create_app as create_crm

    args = build_parser().parse_args([*services(compose)["sandboxes"]["command"], "--cherry-patients", "1"])
    cherry, crm = (
        create_cherry(cherry_cli.config_from_args(args, "cherry-")),
        create_crm(crm_cli.config_from_args(args)),
    )
    info = describe(cherry, "", crm, "")
    for index, practice in enumerate(load_registry(REGISTRY_FILE).practices):
        cherry_conn = example_connections[practice.cherry_conn_id]
        crm_conn = example_connections[practice.crm_conn_id]
        assert cherry_conn["password"] == info["cherry"]["practices"][index]["api_key"], f"{practice.slug}: Cherry key"
        assert crm_conn["password"] == info["crm"]["locations"][index]["token"], f"{practice.slug}: CRM token"
        assert crm_conn["extra"]["location_id"] == info["crm"]["locations"][index]["id"], f"{practice.slug}: location"
        # One agreed zone per practice: the registry's, Cherry's practice zone and the CRM location's.
        zones = (
            practice.timezone,
            info["cherry"]["practices"][index]["timezone"],
            info["crm"]["locations"][index]["timezone"],
        )
        assert len(set(zones)) == 1, f"{practice.slug}: registry, Cherry and CRM zones differ: {zones}"


def test_every_variable_the_compose_file_requires_is_in_env_example(env_example):
    required = {m["name"] for m in VAR_REF.finditer(COMPOSE_FILE.read_text()) if m["op"] in (":?", "?")}
    assert required - set(env_example) == set(), ".env.example must list every variable docker compose requires"


def test_init_imports_an_existing_valid_pools_file(compose):
    init_script = (REPO / "docker" / "init.sh").read_text()
    assert "airflow pools import" in init_script, "airflow-init must import the pools"
    assert "include" in init_script and "pools.json" in init_script, "from include/pools.json"
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    assert pools and all({"slots", "description"} <= set(spec) for spec in pools.values()), (
        "include/pools.json: every pool needs slots and description (what `airflow pools import` accepts)"
    )
    assert services(compose)["airflow-init"]["command"][-1].endswith("init.sh"), "airflow-init runs docker/init.sh"


# --- tests: Dockerfile, .env.example, .gitignore ---------------------------------------------------------


def _requirement_pin(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"requirements.txt does not pin {name}")


def test_dockerfile_from_is_the_pinned_airflow_release():
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert len(froms) == 1, f"one FROM expected, found {froms}"
    assert image_pin_problem(froms[0]) is None, f"{froms[0]} is not pinned"
    match = re.fullmatch(r"apache/airflow:(?:slim-)?(?P<version>\d+\.\d+\.\d+)-python3\.11", froms[0])
    assert match, f"{froms[0]}: expected apache/airflow:[slim-]<version>-python3.11"
    assert match["version"] == _requirement_pin("apache-airflow"), "Dockerfile and requirements.txt Airflow differ"
    assert "requirements.txt" in DOCKERFILE.read_text(), "the image installs the pinned requirements.txt"


def test_the_image_installs_the_runtime_pins_then_the_package_without_dependencies():
    steps = [" ".join(step.split()) for step in re.findall(r"^RUN (.*?)(?<!\\)$", DOCKERFILE.read_text(), re.M | re.S)]
    pins = next(i for i, step in enumerate(steps) if "-r /opt/cherry-sync/requirements.txt" in step)
    package = next(i for i, step in enumerate(steps) if "--no-deps /opt/cherry-sync/src" in step)
    assert pins < package, "the pinned runtime set first, then cherry_sync on top of it"
    copied = re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)", DOCKERFILE.read_text(), re.M)
    assert not any("requirements-dev" in item for item in [*steps, *copied]), "the image gets the runtime set only"
    assert {"pyproject.toml", "plugins/cherry_sync"} <= set(copied), "the package is built from the project itself"
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    assert {"!pyproject.toml", "!plugins/cherry_sync/", "!requirements.txt"} <= set(allowed)


def test_the_image_carries_every_airflow_plugin_module():
    """The api-server serves the webhook receiver and the operations page only if their plugin modules are in the
    image's plugins folder (the package alone is not a plugin), and the build context lets them in."""
    modules = sorted(p.name for p in (REPO / "plugins").glob("*.py"))
    assert modules, "no plugin modules found: the check would be empty"
    dockerfile = DOCKERFILE.read_text()
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for module in modules:
        assert re.search(rf"^COPY .*plugins/{re.escape(module)}.* /opt/airflow/plugins/", dockerfile, re.M), module
        assert f"!plugins/{module}" in ignore, module


def test_env_example_holds_placeholders_not_secrets(env_example):
    for name in (
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_DB_PASSWORD",
        "SYNC_STORE_DB_PASSWORD",
        "CHERRY_SYNC_ADMIN_PASSWORD",
    ):
        assert env_example.get(name, "").startswith(PLACEHOLDER), f".env.example: {name} must be a {PLACEHOLDER} value"
    for name, value in env_example.items():
        if re.search(r"(KEY|TOKEN|SECRET|PASSWORD)$", name) and value and not value.startswith(PLACEHOLDER):
            # Only the sandboxes' public demo credentials (test_demo_credentials_are_the_sandboxes_own).
            assert value.startswith(("ck_sandbox_", "pit-")), f".env.example: {name} looks like a real secret"


def test_dot_env_is_gitignored():
    ignored = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored, ".env holds the real secrets and must be in .gitignore"


def test_the_connections_file_is_gitignored_and_its_example_is_not():
    def ignored(path: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert result.returncode in (0, 1), f"git check-ignore failed on {path}"
        return result.returncode == 0

    assert ignored("secrets/connections.json"), "the practices' keys and tokens must never be committed"
    assert not ignored("secrets/connections.example.json"), "the example shows operators the file's shape"


# --- the checkers can fail -------------------------------------------------------------------------------


def test_checkers_reject_a_broken_compose_file(compose, env_example):
    broken = copy.deepcopy(compose)
    svcs = broken["services"]
    del svcs["mailpit"]
    svcs["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    svcs["redis"]["image"] = "redis:latest"
    svcs["postgres"]["image"] = "postgres"
    svcs["airflow-triggerer"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] = "${ANOTHER_FERNET_KEY}"
    svcs["airflow-apiserver"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] = "hard-coded"
    del svcs["airflow-dag-processor"]["healthcheck"]
    svcs["airflow-worker"]["volumes"] = [v for v in svcs["airflow-worker"]["volumes"] if "include" not in v]
    svcs["airflow-triggerer"]["volumes"] = [*svcs["airflow-triggerer"]["volumes"], "./plugins:/opt/airflow/plugins:ro"]
    svcs["airflow-worker"]["container_name"] = "worker"
    svcs["airflow-worker"]["ports"] = ["8793:8793"]
    svcs["airflow-worker"]["depends_on"]["airflow-init"] = {"condition": "service_started"}
    svcs["airflow-worker"]["environment"]["AIRFLOW_CONN_CRM_GLOW_AESTETHICS"] = "{}"  # misspelt
    del svcs["airflow-worker"]["environment"][conn_var(STORE_CONN_ID)]
    svcs["airflow-worker"]["environment"]["AIRFLOW_CONN_CHERRY_LUMEN_MEDSPA"] = "{}"  # a per-practice line is back
    del svcs["airflow-init"]["environment"]["AIRFLOW__SECRETS__BACKEND"]
    svcs["airflow-dag-processor"]["volumes"] = [
        v for v in svcs["airflow-dag-processor"]["volumes"] if "secrets" not in v
    ]
    svcs["airflow-apiserver"]["volumes"] = [
        v.removesuffix(":ro") if "secrets" in v else v for v in svcs["airflow-apiserver"]["volumes"]
    ]

    assert missing_service_problems(broken) == ["service 'mailpit' is missing"]
    assert any("airflow-scheduler" in p and "LocalExecutor" in p for p in executor_problems(broken))
    assert {p.split(":")[0] for p in image_problems(broken)} == {"redis", "postgres"}
    secrets = secret_reference_problems(broken, env_example)
    assert any("ANOTHER_FERNET_KEY" in p for p in secrets) and any("literal" in p for p in secrets)
    assert healthcheck_problems(broken) == ["airflow-dag-processor: a long-running service without a healthcheck"]
    assert {p.split(":")[0] for p in mount_problems(broken)} == {"airflow-worker", "airflow-triggerer"}
    assert any("./include" in p for p in mount_problems(broken)) and any("shadow" in p for p in mount_problems(broken))
    assert len(scaling_problems(broken)) == 2
    assert any("service_started" in p for p in depends_on_problems(broken))
    assert unknown_connection_problems(broken) == [
        "AIRFLOW_CONN_CRM_GLOW_AESTETHICS (in airflow-worker) names no connection the product uses"
    ]
    assert per_practice_connection_problems(broken) == [
        "AIRFLOW_CONN_CHERRY_LUMEN_MEDSPA (in airflow-worker): a practice's connection belongs in the secrets backend"
    ]
    backend = secrets_backend_problems(broken, env_example)
    assert "airflow-init: AIRFLOW__SECRETS__BACKEND is not set" in backend, backend
    assert "airflow-dag-processor: ./secrets is not mounted at /opt/airflow/secrets" in backend, backend
    assert any(p.startswith("airflow-apiserver:") and "read-only" in p for p in backend), backend
    assert len(backend) == 3, backend
    assert missing_connection_problems(broken) == [
        f"airflow-worker: {conn_var(STORE_CONN_ID)} is not defined (needed by the registry or the product)"
    ]
    assert image_pin_problem("axllent/mailpit") and image_pin_problem("localhost:5000/x") is not None
    assert image_pin_problem("redis:7") and image_pin_problem("postgres:16") is not None
    assert image_pin_problem("postgres@sha256:" + "a" * 64) is None
