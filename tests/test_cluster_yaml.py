"""cluster.yaml (DESIGN 6): Ray's own cluster launcher accepts it, rejects it once broken, and it
deploys what the market maker relies on. No node is contacted and Ray is not started.

Validation is the path `ray up` takes before it touches a node: `create_or_update_cluster` checks
the provider type is known, then `_bootstrap_config` runs `prepare_config` (local provider
preparation, the provider's defaults.yaml merged in, setup commands merged), the provider's
resource fill-in, `validate_config` (the `ray-schema.json` shipped with Ray, via jsonschema, plus
Ray's extra checks) and the provider's `bootstrap_config`. `no_config_cache=True` (as
`ray up --no-config-cache`) keeps it from reading or writing its cache file in /tmp.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from click import ClickException
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.providers import _NODE_PROVIDERS
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())

Config = dict[str, Any]


def raw() -> Config:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def launch_config(config: Config) -> Config:
    """The config `ray up` would deploy, or the exception it would stop with."""
    assert config["provider"]["type"] in _NODE_PROVIDERS
    return _bootstrap_config(copy.deepcopy(config), no_config_cache=True)


def command(commands: list[str], *words: str) -> tuple[int, str]:
    """Index and text of the only command containing all `words`."""
    found = [(i, c) for i, c in enumerate(commands) if all(w in c for w in words)]
    assert len(found) == 1, f"expected one command with {words}, got {found}"
    return found[0]


def resources(start_command: str) -> dict[str, int]:
    match = re.search(r"--resources='([^']*)'", start_command)
    assert match, start_command
    return json.loads(match.group(1))


# -- Ray accepts it -----------------------------------------------------------------------------
def test_the_file_as_written_matches_rays_schema():
    jsonschema.validate(raw(), RAY_SCHEMA)


def test_ray_up_accepts_the_file():
    config = raw()
    resolved = launch_config(config)

    assert resolved["cluster_name"] == "opensqt-mm"
    assert resolved["provider"]["type"] == "local"
    # The local provider generates its one node type; max_workers is not silently capped.
    workers = len(config["provider"]["worker_ips"])
    assert config["max_workers"] <= workers
    [node_type] = resolved["available_node_types"].values()
    assert resolved["head_node_type"] in resolved["available_node_types"]
    assert node_type["max_workers"] == config["max_workers"]


# -- Ray rejects it once broken -----------------------------------------------------------------
def _unknown_top_level_key(c: Config) -> None:
    c["mm_symbols"] = 100


def _unknown_auth_key(c: Config) -> None:
    c["auth"]["ssh_key"] = "~/.ssh/id_ed25519"


def _commands_not_a_list(c: Config) -> None:
    c["head_start_ray_commands"] = "ray start --head"


def _worker_ips_not_a_list(c: Config) -> None:
    c["provider"]["worker_ips"] = "192.0.2.11"


def _node_types_on_prem(c: Config) -> None:
    c["available_node_types"] = {"head": {"node_config": {}, "resources": {"mm_control": 1}}}
    c["head_node_type"] = "head"


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (_unknown_top_level_key, jsonschema.ValidationError, "'mm_symbols' was unexpected"),
        (_unknown_auth_key, jsonschema.ValidationError, "'ssh_key' was unexpected"),
        (_commands_not_a_list, jsonschema.ValidationError, "is not of type 'array'"),
        (_worker_ips_not_a_list, jsonschema.ValidationError, "is not of type 'array'"),
        # Why cluster.yaml declares node resources in `ray start`, not in node types.
        (_node_types_on_prem, ClickException, "not supported for on-premise"),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-auth-key",
        "commands-not-a-list",
        "worker-ips-not-a-list",
        "node-types-on-prem",
    ],
)
def test_ray_up_rejects_a_broken_file(
    mutate: Callable[[Config], None], error: type[Exception], message: str
):
    config = raw()
    mutate(config)
    with pytest.raises(error, match=message):
        launch_config(config)


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (("provider",), jsonschema.ValidationError, "'provider' is a required property"),
        (("provider", "type"), jsonschema.ValidationError, "'type' is a required property"),
        (("cluster_synced_files",), RuntimeError, "Missing 'cluster_synced_files'"),
    ],
    ids=["provider", "provider.type", "cluster_synced_files"],
)
def test_validation_rejects_a_missing_required_key(
    path: tuple[str, ...], error: type[Exception], message: str
):
    """`ray up` fills defaults before validating (and the head revalidates the result), so a key
    left out of the file is filled in; removing one from the resolved config must fail."""
    resolved = launch_config(raw())
    validate_config(resolved)
    parent = resolved
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(error, match=message):
        validate_config(resolved)


# -- what the market maker relies on ------------------------------------------------------------
def test_every_node_installs_this_package_with_python_3_11():
    config = raw()
    assert config["file_mounts"]["~/opensqt"] == "."
    resolved = launch_config(config)
    for role in ("head_setup_commands", "worker_setup_commands"):
        commands = resolved[role]
        venv, _ = command(commands, "python3.11 -m venv")
        install, text = command(commands, "pip install", "-e ~/opensqt")
        assert venv < install
        # Nodes must run the Ray version of the machine that runs `ray up`.
        assert f'"ray[default]=={ray.__version__}"' in text


def test_head_starts_ray_with_the_control_resource_then_the_market_maker():
    commands = raw()["head_start_ray_commands"]
    stop, _ = command(commands, "ray stop")
    start, ray_start = command(commands, "ray start --head")
    run, mm_run = command(commands, "mm run")

    assert stop < start < run
    assert "--port=6379" in ray_start
    assert "--dashboard-host=127.0.0.1" in ray_start  # never exposed; `ray dashboard` forwards
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in ray_start
    assert resources(ray_start) == {"mm_control": 1, "mm_symbols": 100}

    assert "--address auto" in mm_run
    # the control actors are pinned to the head (their registry lives on its disk); each of
    # the three takes a fraction of the head's single mm_control unit
    assert """MM_RAY__CONTROL_RESOURCES='{"mm_control": 0.01}'""" in mm_run
    assert """MM_RAY__SYMBOL_RESOURCES='{"mm_symbols": 1}'""" in mm_run
    assert "--config ~/opensqt/configs/market_maker.yaml" in mm_run
    assert re.search(r"nohup mm run .*> ~/mm\.log 2>&1 &", mm_run), "must run detached"


def test_workers_join_the_head_with_symbol_capacity_only():
    commands = raw()["worker_start_ray_commands"]
    stop, _ = command(commands, "ray stop")
    start, ray_start = command(commands, "ray start")
    assert stop < start
    assert "--address=$RAY_HEAD_IP:6379" in ray_start
    assert "--head" not in ray_start
    assert resources(ray_start) == {"mm_symbols": 100}  # no mm_control: one control node


def test_no_secrets_in_the_file():
    text = CLUSTER_YAML.read_text()
    assigned = re.compile(r"(?i)(api[_-]?key|api[_-]?secret|secret|passphrase|password)\w*\s*[:=]")
    assert not assigned.search(text)


# -- the AWS variant shown in the comments ------------------------------------------------------
def test_the_commented_aws_variant_is_valid_too():
    """Applied as the comments say. Ray's AWS steps after prepare_config query EC2 (instance
    types) and need boto3, so this stops at prepare_config + validate_config."""
    block = re.search(r"^# >>> aws\n(.*?)^# <<< aws$", CLUSTER_YAML.read_text(), re.M | re.S)
    assert block, "AWS block markers missing"
    aws = yaml.safe_load(re.sub(r"^# ?", "", block.group(1), flags=re.M))
    config = raw()
    config.update(aws)
    del config["auth"]["ssh_private_key"]

    resolved = prepare_config(config)
    validate_config(resolved)

    node_types = resolved["available_node_types"]
    assert node_types[resolved["head_node_type"]]["resources"]["mm_control"] == 1
    workers = [t for name, t in node_types.items() if name != resolved["head_node_type"]]
    assert workers and all("mm_control" not in t["resources"] for t in workers)
    assert all(t["resources"]["mm_symbols"] > 0 for t in workers)
