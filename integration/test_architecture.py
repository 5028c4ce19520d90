"""The crate structure of docs/architecture.md holds: dependencies point one way,
the PostgreSQL dialect and the view algebra stay free of Kafka, no file imports
in a circle, and no crate or file grows past the size a reader can hold."""

import json
import subprocess

from layout import CRATES, ROOT, circles, crate_files, crates, file_graph, rust_lines

# Every lambdadb crate a crate may depend on (normal dependencies). Anything not
# listed is refused, so a new edge is a decision recorded here.
ALLOWED = {
    "lambdadb-common": set(),
    "lambdadb-cache": set(),
    "lambdadb-speed": {"lambdadb-common"},
    "lambdadb-batch": {"lambdadb-common"},
    "lambdadb-views": set(),
    "lambdadb-pgcompat": {"lambdadb-common"},
    "lambdadb-serving": {
        "lambdadb-common",
        "lambdadb-speed",
        "lambdadb-batch",
        "lambdadb-cache",
        "lambdadb-views",
        "lambdadb-pgcompat",
    },
    "lambdadb-wire": {"lambdadb-common", "lambdadb-serving", "lambdadb-pgcompat"},
    # Ballista jobs run batch plans: it knows the batch layer's engine trait only.
    "lambdadb-ballista": {"lambdadb-batch"},
    "lambdadb": {
        "lambdadb-common",
        "lambdadb-speed",
        "lambdadb-batch",
        "lambdadb-pgcompat",
        "lambdadb-serving",
        "lambdadb-wire",
        "lambdadb-ballista",
    },
    "lambdadb-slt": set(),
}


def metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def test_dependencies_point_down():
    packages = metadata()["packages"]
    assert {p["name"] for p in packages} == set(ALLOWED), "a crate was added: place it in ALLOWED"
    for p in packages:
        ours = {
            d["name"] for d in p["dependencies"]
            if d["name"].startswith("lambdadb") and d["kind"] is None
        }
        assert ours <= ALLOWED[p["name"]], f"{p['name']} must not depend on {ours - ALLOWED[p['name']]}"


def test_dialect_and_view_algebra_know_no_kafka():
    for crate in ["lambdadb-pgcompat", "lambdadb-views"]:
        tree = subprocess.run(
            ["cargo", "tree", "--offline", "-p", crate, "-e", "normal", "--prefix", "none"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        assert "rdkafka" not in tree, f"{crate} pulls in rdkafka"
        assert tree.startswith(crate), tree[:200]


def test_no_file_imports_in_a_circle():
    for crate in crates():
        assert circles(file_graph(crate)) == [], f"crates/{crate}: files import each other in a circle"


def test_the_graph_sees_imports():
    # The checker itself: a known edge of each kind is found.
    serving = file_graph("serving")
    assert "source" in serving["engine"]  # use crate::source::...
    assert "system::freshness" in serving["system"]  # mod freshness; freshness::...
    assert "system::columns" in serving["system::freshness"]  # super::columns
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_sizes():
    total = sum(rust_lines(c) for c in crates())
    for crate in crates():
        assert rust_lines(crate) <= total / 3, f"crates/{crate} holds more than a third of the Rust lines"
        for module, path in crate_files(crate).items():
            n = len(path.read_text().splitlines())
            assert n <= 600, f"{path.relative_to(CRATES)} has {n} lines; split it"
