"""The local broker's generated configuration, checked without Java or a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.kafka.broker import DEFAULT_KAFKA_VERSION, LocalBroker

pytestmark = pytest.mark.unit

DATA = Path("/srv/kafka")


def parse(text: str) -> dict[str, str]:
    """Split key=value lines the way Java's Properties reads them (no escapes used here)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] not in "#!")
    return {key.strip(): value.strip() for key, value in pairs}


def test_listeners_use_the_port_and_the_next_one_for_the_controller() -> None:
    props = parse(LocalBroker(DATA, port=19092).server_properties())

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["controller.listener.names"] == "CONTROLLER"


def test_an_explicit_controller_port_is_used() -> None:
    props = parse(LocalBroker(DATA, port=19092, controller_port=29093).server_properties())

    assert props["listeners"].endswith("CONTROLLER://127.0.0.1:29093")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"


def test_the_default_port_is_9092() -> None:
    local = LocalBroker(DATA)

    assert local.bootstrap_servers == "127.0.0.1:9092"
    assert parse(local.server_properties())["listeners"].startswith("PLAINTEXT://127.0.0.1:9092,")


def test_one_node_runs_both_kraft_roles() -> None:
    props = parse(LocalBroker(DATA).server_properties())

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert "zookeeper.connect" not in props


def test_internal_topics_fit_a_single_broker() -> None:
    props = parse(LocalBroker(DATA).server_properties())

    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"


def test_consumer_groups_rebalance_without_delay_and_topics_are_explicit() -> None:
    props = parse(LocalBroker(DATA).server_properties())

    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "4"


def test_every_file_lives_in_the_data_directory(tmp_path: Path) -> None:
    local = LocalBroker(tmp_path)
    props = parse(local.server_properties())

    assert Path(props["log.dirs"]) == tmp_path.resolve() / "kafka-logs"
    for path in (local.properties_path, local.pid_path, local.log_path, local.console_path):
        assert path.parent == tmp_path.resolve()


def test_a_relative_data_directory_becomes_absolute() -> None:
    props = parse(LocalBroker(Path("relative/data")).server_properties())

    assert Path(props["log.dirs"]).is_absolute()


def test_the_broker_logs_to_its_file_and_not_to_the_console(tmp_path: Path) -> None:
    local = LocalBroker(tmp_path)
    log4j = parse(local.log4j2_properties())

    assert log4j["appender.file.type"] == "File"
    assert log4j["appender.file.fileName"] == str(tmp_path.resolve() / "server.log")
    assert log4j["rootLogger.appenderRef.file.ref"] == "file"
    assert not any(value == "Console" for value in log4j.values())


def test_jars_are_cached_per_version_outside_the_data_directory(tmp_path: Path) -> None:
    local = LocalBroker(tmp_path / "data", cache_dir=tmp_path / "cache", kafka_version="4.0.0")

    assert local.libs_dir == tmp_path.resolve() / "cache" / "kafka-4.0.0" / "libs"
    assert LocalBroker(DATA).kafka_version == DEFAULT_KAFKA_VERSION


def test_the_default_cache_is_under_the_home_directory() -> None:
    cache = Path.home().resolve() / ".cache" / "tracker"

    assert LocalBroker(DATA).libs_dir == cache / f"kafka-{DEFAULT_KAFKA_VERSION}" / "libs"
