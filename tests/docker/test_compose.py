"""docker/compose.yml and compose.gpu.yml checked against the code they run.

Structure (services, profiles, volumes, healthchecks, GPU request), every ``CBIR_*`` variable
against the fields of :class:`service.settings.Settings`, and every command against ``cbir``'s own
parser, so renaming a setting or a flag without updating the compose files fails here. Building
and running the image is docker/smoke.sh's job (too slow for the test suite).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.cli import build_parser
from service.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
PREFIX = "CBIR_"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / name).read_text())
    return data


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load("compose.yml")


@pytest.fixture(scope="module")
def gpu() -> dict[str, Any]:
    return load("compose.gpu.yml")


def setting_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == PREFIX
    return {prefix + name.upper() for name in Settings.model_fields}


def unknown_settings(names: set[str]) -> set[str]:
    """The ``CBIR_*`` names that are no setting of the service."""
    return {n for n in names if n.startswith(PREFIX)} - setting_names()


def interpolate(value: str) -> str:
    """Compose interpolation with an empty environment: defaults used, required ones filled in."""
    def one(m: re.Match[str]) -> str:
        op, arg = m.group("op"), m.group("arg")
        if op is None:
            return ""
        return arg if "-" in op else f"/required/{m.group('name')}"
    return VAR.sub(one, value)


def cli(command: list[str]) -> argparse.Namespace:
    argv = [interpolate(part) for part in command]
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed why
        pytest.fail(f"cbir rejects {argv} (exit {exc.code})")


def env_keys(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {item.split("=", 1)[0] for item in env}
    return set(env)


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (source, options) of a service's short-syntax volumes."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *options = VAR.sub("VAR", spec).split(":")
        out[target] = (source, ",".join(options))
    return out


def test_services_and_profiles(base: dict[str, Any]) -> None:
    services = base["services"]
    assert set(services) == {"api", "indexer", "watcher"}
    assert "profiles" not in services["api"]
    assert services["indexer"]["profiles"] == ["index"]
    assert services["watcher"]["profiles"] == ["watch"]
    for other in ("indexer", "watcher"):
        assert services["api"]["image"] == services[other]["image"]
        assert services["api"]["build"] == services[other]["build"]
    build = services["api"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).is_file()
    assert services["api"]["restart"] in ("always", "unless-stopped", "on-failure")
    assert services["indexer"]["restart"] == "no"


def test_index_volume_and_mounts(base: dict[str, Any]) -> None:
    assert "index" in base["volumes"]
    for service in base["services"].values():
        mounted = mounts(service)
        assert mounted["/data/index"] == ("index", "")
        assert mounted["/images"][1] == "ro"
        assert mounted["/weights"][1] == "ro"
    images = [v for v in base["services"]["indexer"]["volumes"] if v.endswith(":/images:ro")]
    assert len(images) == 1 and re.fullmatch(r"\$\{IMAGES_DIR:\?[^}]+\}:/images:ro", images[0])


def test_api_serves_the_volume_on_8000(base: dict[str, Any]) -> None:
    api = base["services"]["api"]
    args = cli(api["command"])
    assert args.command == "serve"
    assert (args.index, args.host, args.port) == ("/data/index", "0.0.0.0", 8000)
    assert [p.rsplit(":", 1)[1] for p in api["ports"]] == ["8000"]


def test_api_healthcheck_asks_readyz(base: dict[str, Any]) -> None:
    check = base["services"]["api"]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert "http://127.0.0.1:8000/readyz" in " ".join(check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)


def test_api_waits_for_the_indexer(base: dict[str, Any]) -> None:
    dep = base["services"]["api"]["depends_on"]["indexer"]
    assert dep["condition"] == "service_completed_successfully"
    assert dep["required"] is False  # the indexer's profile may be off


def test_indexer_builds_or_updates_the_index(base: dict[str, Any]) -> None:
    args = cli(base["services"]["indexer"]["command"])
    assert (args.command, args.index_command) == ("index", "build")
    assert (args.images, args.index, args.resume) == ("/images", "/data/index", True)
    assert args.weights == "imagenet" and args.device == "cpu"


def test_watcher_follows_the_images_folder_beside_a_keyless_api(base: dict[str, Any]) -> None:
    watcher, api = base["services"]["watcher"], base["services"]["api"]
    args = cli(watcher["command"])
    assert (args.command, args.index_command) == ("index", "watch")
    assert (args.images, args.index, args.polling) == ("/images", "/data/index", False)
    assert args.index == cli(api["command"]).index  # the index the api follows
    assert watcher["restart"] == "unless-stopped"
    assert watcher["depends_on"]["indexer"] == {"condition": "service_completed_successfully",
                                                "required": False}
    assert "CBIR_API_KEY" not in env_keys(watcher)  # a writer of its own, not the api's key
    assert api["environment"]["CBIR_API_KEY"] is None  # unset unless given: keyless by default
    polling = cli([*watcher["command"], "--polling"])
    assert polling.polling is True


@pytest.mark.parametrize("name", ["compose.yml", "compose.gpu.yml"])
def test_every_cbir_variable_is_a_setting(name: str) -> None:
    data = load(name)
    keys = set().union(*(env_keys(s) for s in data["services"].values()))
    text = "\n".join(line.split("#", 1)[0] for line in (DOCKER / name).read_text().splitlines())
    interpolated = {m.group("name") for m in VAR.finditer(text)}
    assert unknown_settings(keys | interpolated) == set()
    for key in keys:
        assert key.startswith(PREFIX), f"{name}: {key} is no setting of the service"


def test_the_settings_check_catches_a_renamed_setting() -> None:
    assert unknown_settings({"CBIR_INDEX_DIR", "CBIR_WEIGHTS"}) == set()
    assert unknown_settings({"CBIR_INDEX_DIRECTORY", "IMAGES_DIR"}) == {"CBIR_INDEX_DIRECTORY"}


def test_gpu_override(base: dict[str, Any], gpu: dict[str, Any]) -> None:
    assert set(gpu["services"]) <= set(base["services"])
    api, indexer = gpu["services"]["api"], gpu["services"]["indexer"]
    assert api["environment"]["CBIR_DEVICE"] == "cuda"
    for service in (api, indexer):
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
        assert service["build"]["args"]["TORCH_VARIANT"].endswith("cuda}")
    assert indexer["command"] == [*base["services"]["indexer"]["command"], "--device", "cuda"]
    assert cli(indexer["command"]).device == "cuda"


def test_dockerfile_defaults_match_compose() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert cmd and entrypoint and json.loads(entrypoint.group(1)) == ["cbir"]
    args = cli(json.loads(cmd.group(1)))
    assert (args.command, args.index, args.host, args.port) == ("serve", "/data/index",
                                                                "0.0.0.0", 8000)
    assert re.search(r"^HEALTHCHECK .*\n.*127\.0\.0\.1:8000/readyz", text, re.M)
    assert re.search(r"^USER cbir$", text, re.M)
    env = dict(re.findall(r"\b(CBIR_\w+)=(\S+)", text.split("FROM python AS runtime")[1]))
    assert env and unknown_settings(set(env)) == set()
