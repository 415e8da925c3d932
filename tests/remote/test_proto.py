"""The exchange API's .proto files: generated code up to date, Buf STANDARD lint, our conventions.

proto/buf.yaml asks for `buf lint` with the STANDARD rules, but the buf binary is not installable
on our machines. So these tests compile the sources with grpcio-tools' protoc into a
FileDescriptorSet and check the STANDARD rules we rely on (package/directory match, version
suffix, naming, enum prefixes and zero values, RPC request/response names, unused imports),
plus the API's own conventions (money is a decimal string, `*_ms` is int64 milliseconds) and the
exact RPC list of ExchangeService. Each rule is a small function returning its violations; one
test feeds a deliberately bad .proto through the same pipeline to prove the rules can fail.

The generated Python in connectors/remote/generated is checked by regenerating it into a
temporary directory with scripts/gen_proto.py and comparing the bytes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import grpc_tools
import pytest
import yaml
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
GENERATED_DIR = "connectors/remote/generated"
GENERATED = ROOT / GENERATED_DIR
GRPC_TOOLS_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"

PACKAGE = "opensqt.market_maker.v1"
SERVICE = "ExchangeService"
UNARY_RPCS = (
    "GetName",
    "LoadMarkets",
    "GetSymbolInfo",
    "PlaceOrder",
    "BatchPlaceOrders",
    "CancelOrder",
    "BatchCancelOrders",
    "CancelAllOrders",
    "GetOrder",
    "GetOpenOrders",
    "GetFills",
    "GetAccount",
    "GetPositions",
    "GetHistoricalKlines",
)
SERVER_STREAMING_RPCS = (
    "SubscribePrice",
    "SubscribeOrders",
    "SubscribeKlines",
    "SubscribeAccount",
    "SubscribePositions",
)
MONEY_FIELDS = frozenset(
    {
        "price",
        "quantity",
        "fee",
        "free",
        "locked",
        "tick_size",
        "lot_size",
        "min_quantity",
        "min_notional",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "average_price",
        "filled_quantity",
        "entry_price",
        "bid",
        "ask",
    }
)

PASCAL_CASE = re.compile(r"[A-Z][A-Za-z0-9]*")
LOWER_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
UPPER_SNAKE_CASE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")
VERSION = re.compile(r"v\d+(p\d+)?((alpha|beta)\d*)?(test\w*)?")

Rule = Callable[[FileDescriptorSet], list[str]]


# --- compiling --------------------------------------------------------------------------------


def build_descriptor_set(include_root: Path, out: Path) -> FileDescriptorSet:
    """Every .proto under include_root compiled by grpcio-tools' protoc (with their imports)."""
    sources = sorted(p.relative_to(include_root).as_posix() for p in include_root.rglob("*.proto"))
    assert sources, f"no .proto files under {include_root}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{include_root}",
            f"-I{GRPC_TOOLS_INCLUDE}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *sources,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed ({result.returncode}):\n{result.stderr}"
    descriptor_set = FileDescriptorSet()
    descriptor_set.ParseFromString(out.read_bytes())
    return descriptor_set


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> FileDescriptorSet:
    out = tmp_path_factory.mktemp("proto") / "descriptor_set.binpb"
    return build_descriptor_set(PROTO_ROOT, out)


# --- walking the descriptors ------------------------------------------------------------------


def our_files(descriptor_set: FileDescriptorSet) -> list[FileDescriptorProto]:
    return [f for f in descriptor_set.file if not f.name.startswith("google/")]


def qualify(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def messages(file: FileDescriptorProto) -> Iterator[tuple[str, DescriptorProto]]:
    """(full name, message) of every message of the file, nested ones included."""

    def walk(scope: str, found: list[DescriptorProto]) -> Iterator[tuple[str, DescriptorProto]]:
        for message in found:
            name = qualify(scope, message.name)
            yield name, message
            yield from walk(name, list(message.nested_type))

    yield from walk(file.package, list(file.message_type))


def enums(file: FileDescriptorProto) -> Iterator[tuple[str, EnumDescriptorProto]]:
    """(full name, enum) of every enum of the file, nested ones included."""
    for enum in file.enum_type:
        yield qualify(file.package, enum.name), enum
    for scope, message in messages(file):
        for enum in message.enum_type:
            yield qualify(scope, enum.name), enum


def fields(file: FileDescriptorProto) -> Iterator[tuple[str, FieldDescriptorProto]]:
    for scope, message in messages(file):
        for field in message.field:
            yield qualify(scope, field.name), field


def upper_snake(name: str) -> str:
    """Buf's UPPER_SNAKE_CASE of PascalCase: OrderSide -> ORDER_SIDE, HTTPCode -> HTTP_CODE."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z0-9])(?=[A-Z][a-z])", "_", name).upper()


def simple_name(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


# --- Buf STANDARD rules -----------------------------------------------------------------------


def package_defined(descriptor_set: FileDescriptorSet) -> list[str]:
    return [f"{f.name}: no package" for f in our_files(descriptor_set) if not f.package]


def package_directory_match(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: package {f.package} is not its directory {PurePosixPath(f.name).parent}"
        for f in our_files(descriptor_set)
        if f.package.replace(".", "/") != str(PurePosixPath(f.name).parent)
    ]


def package_version_suffix(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: package {f.package} does not end in a version such as v1"
        for f in our_files(descriptor_set)
        if not VERSION.fullmatch(f.package.rsplit(".", 1)[-1])
    ]


def package_lower_snake_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: package {f.package} is not lower_snake_case"
        for f in our_files(descriptor_set)
        if not all(LOWER_SNAKE_CASE.fullmatch(part) for part in f.package.split("."))
    ]


def single_package(descriptor_set: FileDescriptorSet) -> list[str]:
    by_package: dict[str, list[str]] = defaultdict(list)
    for f in our_files(descriptor_set):
        by_package[f.package].append(f.name)
    if len(by_package) <= 1:
        return []
    return [f"files in several packages: {dict(by_package)}"]


def file_lower_snake_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: file name is not lower_snake_case"
        for f in our_files(descriptor_set)
        if not LOWER_SNAKE_CASE.fullmatch(PurePosixPath(f.name).stem)
    ]


def import_no_public(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: public import {f.dependency[i]}"
        for f in our_files(descriptor_set)
        for i in f.public_dependency
    ]


def import_no_weak(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: weak import {f.dependency[i]}"
        for f in our_files(descriptor_set)
        for i in f.weak_dependency
    ]


def import_used(descriptor_set: FileDescriptorSet) -> list[str]:
    defined_in: dict[str, str] = {}
    for f in descriptor_set.file:
        for name, _ in messages(f):
            defined_in[f".{name}"] = f.name
        for name, _ in enums(f):
            defined_in[f".{name}"] = f.name
    violations = []
    for f in our_files(descriptor_set):
        types = {field.type_name for _, field in fields(f) if field.type_name}
        for service in f.service:
            for method in service.method:
                types |= {method.input_type, method.output_type}
        used = {defined_in.get(t) for t in types}
        violations += [f"{f.name}: unused import {dep}" for dep in f.dependency if dep not in used]
    return violations


def enum_pascal_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: enum {name} is not PascalCase"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        if not PASCAL_CASE.fullmatch(enum.name)
    ]


def enum_value_upper_snake_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: enum value {name}.{value.name} is not UPPER_SNAKE_CASE"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        for value in enum.value
        if not UPPER_SNAKE_CASE.fullmatch(value.name)
    ]


def enum_value_prefix(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: enum value {name}.{value.name} lacks the prefix {upper_snake(enum.name)}_"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        for value in enum.value
        if not value.name.startswith(f"{upper_snake(enum.name)}_")
    ]


def enum_zero_value_suffix(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: zero value {name}.{value.name} is not {upper_snake(enum.name)}_UNSPECIFIED"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        for value in enum.value
        if value.number == 0 and value.name != f"{upper_snake(enum.name)}_UNSPECIFIED"
    ]


def enum_first_value_zero(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: first value {name}.{enum.value[0].name} is {enum.value[0].number}, not 0"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        if enum.value and enum.value[0].number != 0
    ]


def enum_no_allow_alias(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: enum {name} sets allow_alias"
        for f in our_files(descriptor_set)
        for name, enum in enums(f)
        if enum.options.allow_alias
    ]


def message_pascal_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: message {name} is not PascalCase"
        for f in our_files(descriptor_set)
        for name, message in messages(f)
        if not PASCAL_CASE.fullmatch(message.name)
    ]


def field_lower_snake_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: field {name} is not lower_snake_case"
        for f in our_files(descriptor_set)
        for name, field in fields(f)
        if not LOWER_SNAKE_CASE.fullmatch(field.name)
    ]


def is_synthetic_oneof(message: DescriptorProto, index: int) -> bool:
    """The oneof protoc makes for a proto3 `optional` field (named `_<field>`)."""
    return message.oneof_decl[index].name.startswith("_") and any(
        field.proto3_optional
        for field in message.field
        if field.HasField("oneof_index") and field.oneof_index == index
    )


def oneof_lower_snake_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: oneof {name}.{oneof.name} is not lower_snake_case"
        for f in our_files(descriptor_set)
        for name, message in messages(f)
        for index, oneof in enumerate(message.oneof_decl)
        if not is_synthetic_oneof(message, index) and not LOWER_SNAKE_CASE.fullmatch(oneof.name)
    ]


def service_pascal_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: service {qualify(f.package, s.name)} is not PascalCase"
        for f in our_files(descriptor_set)
        for s in f.service
        if not PASCAL_CASE.fullmatch(s.name)
    ]


def service_suffix(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: service {qualify(f.package, s.name)} does not end in Service"
        for f in our_files(descriptor_set)
        for s in f.service
        if not s.name.endswith("Service")
    ]


def rpc_pascal_case(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: rpc {s.name}.{m.name} is not PascalCase"
        for f in our_files(descriptor_set)
        for s in f.service
        for m in s.method
        if not PASCAL_CASE.fullmatch(m.name)
    ]


def rpc_request_standard_name(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: rpc {s.name}.{m.name} takes {simple_name(m.input_type)}, not {m.name}Request"
        for f in our_files(descriptor_set)
        for s in f.service
        for m in s.method
        if simple_name(m.input_type) != f"{m.name}Request"
    ]


def rpc_response_standard_name(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: rpc {s.name}.{m.name} returns {simple_name(m.output_type)}, "
        f"not {m.name}Response"
        for f in our_files(descriptor_set)
        for s in f.service
        for m in s.method
        if simple_name(m.output_type) != f"{m.name}Response"
    ]


def rpc_request_response_unique(descriptor_set: FileDescriptorSet) -> list[str]:
    uses: dict[str, list[str]] = defaultdict(list)
    for f in our_files(descriptor_set):
        for s in f.service:
            for m in s.method:
                uses[m.input_type].append(f"{s.name}.{m.name} request")
                uses[m.output_type].append(f"{s.name}.{m.name} response")
    return [
        f"message {type_name.lstrip('.')} is used by several RPCs: {', '.join(users)}"
        for type_name, users in uses.items()
        if len(users) > 1
    ]


# --- our API conventions ----------------------------------------------------------------------


def money_fields_are_strings(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: money field {name} is {FieldDescriptorProto.Type.Name(field.type)}, "
        "not a decimal string"
        for f in our_files(descriptor_set)
        for name, field in fields(f)
        if field.name in MONEY_FIELDS and field.type != FieldDescriptorProto.TYPE_STRING
    ]


def ms_fields_are_int64(descriptor_set: FileDescriptorSet) -> list[str]:
    return [
        f"{f.name}: millisecond field {name} is {FieldDescriptorProto.Type.Name(field.type)}, "
        "not int64"
        for f in our_files(descriptor_set)
        for name, field in fields(f)
        if field.name.endswith("_ms") and field.type != FieldDescriptorProto.TYPE_INT64
    ]


RULES: dict[str, Rule] = {
    "PACKAGE_DEFINED": package_defined,
    "PACKAGE_DIRECTORY_MATCH": package_directory_match,
    "PACKAGE_VERSION_SUFFIX": package_version_suffix,
    "PACKAGE_LOWER_SNAKE_CASE": package_lower_snake_case,
    "SINGLE_PACKAGE": single_package,
    "FILE_LOWER_SNAKE_CASE": file_lower_snake_case,
    "IMPORT_NO_PUBLIC": import_no_public,
    "IMPORT_NO_WEAK": import_no_weak,
    "IMPORT_USED": import_used,
    "ENUM_PASCAL_CASE": enum_pascal_case,
    "ENUM_VALUE_UPPER_SNAKE_CASE": enum_value_upper_snake_case,
    "ENUM_VALUE_PREFIX": enum_value_prefix,
    "ENUM_ZERO_VALUE_SUFFIX": enum_zero_value_suffix,
    "ENUM_FIRST_VALUE_ZERO": enum_first_value_zero,
    "ENUM_NO_ALLOW_ALIAS": enum_no_allow_alias,
    "MESSAGE_PASCAL_CASE": message_pascal_case,
    "FIELD_LOWER_SNAKE_CASE": field_lower_snake_case,
    "ONEOF_LOWER_SNAKE_CASE": oneof_lower_snake_case,
    "SERVICE_PASCAL_CASE": service_pascal_case,
    "SERVICE_SUFFIX": service_suffix,
    "RPC_PASCAL_CASE": rpc_pascal_case,
    "RPC_REQUEST_STANDARD_NAME": rpc_request_standard_name,
    "RPC_RESPONSE_STANDARD_NAME": rpc_response_standard_name,
    "RPC_REQUEST_RESPONSE_UNIQUE": rpc_request_response_unique,
    "MONEY_FIELDS_ARE_STRINGS": money_fields_are_strings,
    "MS_FIELDS_ARE_INT64": ms_fields_are_int64,
}


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "generated"
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--out", str(fresh)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"scripts/gen_proto.py failed:\n{result.stderr}"

    def contents(directory: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}

    def why(name: str) -> str:
        if name not in committed:
            return "not committed"
        return "no longer generated" if name not in expected else "differs"

    expected, committed = contents(fresh), contents(GENERATED)
    stale = sorted(
        f"{name} ({why(name)})"
        for name in expected.keys() | committed.keys()
        if expected.get(name) != committed.get(name)
    )
    assert not stale, f"{GENERATED_DIR} is stale: {', '.join(stale)}. Run `make proto`."


def test_descriptor_set_holds_our_files(descriptor_set: FileDescriptorSet) -> None:
    sources = {p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto")}
    assert {f.name for f in our_files(descriptor_set)} == sources
    assert {f"{PACKAGE.replace('.', '/')}/{n}.proto" for n in ("models", "events")} <= sources


@pytest.mark.parametrize("rule", RULES)
def test_lint_rule(rule: str, descriptor_set: FileDescriptorSet) -> None:
    violations = RULES[rule](descriptor_set)
    assert not violations, f"{rule} violated:\n" + "\n".join(violations)


def test_exchange_service_has_exactly_the_designed_rpcs(descriptor_set: FileDescriptorSet) -> None:
    services = {qualify(f.package, s.name): s for f in our_files(descriptor_set) for s in f.service}
    assert f"{PACKAGE}.{SERVICE}" in services, f"no {PACKAGE}.{SERVICE} in {sorted(services)}"
    actual = {
        m.name: (m.client_streaming, m.server_streaming)
        for m in services[f"{PACKAGE}.{SERVICE}"].method
    }
    expected = {name: (False, False) for name in UNARY_RPCS} | {
        name: (False, True) for name in SERVER_STREAMING_RPCS
    }
    assert actual == expected


BAD_PROTO = """\
syntax = "proto3";

package acme.Billing;

import "acme/v1/legacy.proto";

enum Color {
  COLOR_UNKNOWN = 0;
  RED = 1;
  color_blue = 2;
}

enum traffic_light {
  TRAFFIC_LIGHT_UNSPECIFIED = 0;
}

message Quote {
  message Leg {
    string legName = 1;
  }
  string symbol = 1;
  double price = 2;
  int32 time_ms = 3;
  string clientOrderId = 4;
  optional int64 since_ms = 5;
  oneof Target {
    string venue = 6;
    string pool = 7;
  }
}

message quote_list {}

message GetQuoteResponse {}

message ListQuotesRequest {}

service pricing {
  rpc get_quote(Quote) returns (GetQuoteResponse);
  rpc ListQuotes(ListQuotesRequest) returns (GetQuoteResponse);
}
"""

LEGACY_PROTO = """\
syntax = "proto2";

package acme.v1;

enum Level {
  option allow_alias = true;
  LEVEL_HIGH = 1;
  LEVEL_TOP = 1;
  LEVEL_UNSPECIFIED = 0;
}
"""

# rule -> a piece of the violation that names the offending element
EXPECTED_VIOLATIONS = {
    "PACKAGE_DIRECTORY_MATCH": "package acme.Billing is not its directory acme/v1",
    "PACKAGE_VERSION_SUFFIX": "package acme.Billing does not end in a version",
    "PACKAGE_LOWER_SNAKE_CASE": "package acme.Billing",
    "SINGLE_PACKAGE": "several packages",
    "FILE_LOWER_SNAKE_CASE": "acme/v1/BadApi.proto",
    "IMPORT_USED": "unused import acme/v1/legacy.proto",
    "ENUM_PASCAL_CASE": "enum acme.Billing.traffic_light",
    "ENUM_VALUE_UPPER_SNAKE_CASE": "acme.Billing.Color.color_blue",
    "ENUM_VALUE_PREFIX": "acme.Billing.Color.RED lacks the prefix COLOR_",
    "ENUM_ZERO_VALUE_SUFFIX": "acme.Billing.Color.COLOR_UNKNOWN is not COLOR_UNSPECIFIED",
    "ENUM_FIRST_VALUE_ZERO": "acme.v1.Level.LEVEL_HIGH is 1",
    "ENUM_NO_ALLOW_ALIAS": "acme.v1.Level",
    "MESSAGE_PASCAL_CASE": "message acme.Billing.quote_list",
    "FIELD_LOWER_SNAKE_CASE": "field acme.Billing.Quote.Leg.legName",
    "ONEOF_LOWER_SNAKE_CASE": "oneof acme.Billing.Quote.Target",
    "SERVICE_PASCAL_CASE": "service acme.Billing.pricing",
    "SERVICE_SUFFIX": "service acme.Billing.pricing does not end in Service",
    "RPC_PASCAL_CASE": "rpc pricing.get_quote",
    "RPC_REQUEST_STANDARD_NAME": "rpc pricing.get_quote takes Quote, not get_quoteRequest",
    "RPC_RESPONSE_STANDARD_NAME": "rpc pricing.ListQuotes returns GetQuoteResponse",
    "RPC_REQUEST_RESPONSE_UNIQUE": "acme.Billing.GetQuoteResponse is used by several RPCs",
    "MONEY_FIELDS_ARE_STRINGS": "money field acme.Billing.Quote.price is TYPE_DOUBLE",
    "MS_FIELDS_ARE_INT64": "millisecond field acme.Billing.Quote.time_ms is TYPE_INT32",
}


def test_rules_report_a_bad_proto(tmp_path: Path) -> None:
    include_root = tmp_path / "proto"
    (include_root / "acme" / "v1").mkdir(parents=True)
    (include_root / "acme" / "v1" / "BadApi.proto").write_text(BAD_PROTO)
    (include_root / "acme" / "v1" / "legacy.proto").write_text(LEGACY_PROTO)
    bad = build_descriptor_set(include_root, tmp_path / "bad.binpb")

    reports = {rule: RULES[rule](bad) for rule in RULES}
    unreported = {
        rule: reports[rule]
        for rule, expected in EXPECTED_VIOLATIONS.items()
        if not any(expected in violation for violation in reports[rule])
    }
    assert not unreported, f"rules that missed their violation (what they reported): {unreported}"
    # the camelCase field of the top-level message too, and the proto3 `optional` field's
    # synthetic oneof `_since_ms` is not a violation
    assert any("Quote.clientOrderId" in v for v in reports["FIELD_LOWER_SNAKE_CASE"])
    assert reports["ONEOF_LOWER_SNAKE_CASE"] == [
        "acme/v1/BadApi.proto: oneof acme.Billing.Quote.Target is not lower_snake_case"
    ]


def test_buf_yaml_lints_with_standard() -> None:
    config = yaml.safe_load((PROTO_ROOT / "buf.yaml").read_text())
    assert config["version"] == "v2"
    assert config["lint"]["use"] == ["STANDARD"]
    # these tests check STANDARD without exceptions: keep buf.yaml saying the same
    assert not {"except", "ignore", "ignore_only"} & set(config["lint"]), config["lint"]


def test_buf_gen_yaml_has_plugins() -> None:
    path = PROTO_ROOT / "buf.gen.yaml"
    assert path.is_file(), f"{path} is missing"
    config = yaml.safe_load(path.read_text())
    assert config["version"] == "v2"
    plugins = config.get("plugins")
    assert isinstance(plugins, list) and plugins, f"no plugins in {path}"
    assert all("out" in plugin for plugin in plugins), plugins
