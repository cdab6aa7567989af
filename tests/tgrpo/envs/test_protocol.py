"""Protocol constants against OpenVLA's LIBERO evaluation (docs/protocol.md, "Constants"), transcribed by hand."""

import dataclasses

import pytest

from tgrpo.envs.protocol import (
    OPENVLA_PROTOCOL,
    Protocol,
    check_episode_ids,
    check_task_ids,
    resolve_suite,
)


def test_max_policy_steps_match_openvla():
    assert OPENVLA_PROTOCOL.max_policy_steps == {
        "libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520,
    }


def test_wait_and_camera_constants():
    p = OPENVLA_PROTOCOL
    assert p.num_wait_steps == 10
    assert p.wait_action == (0, 0, 0, 0, 0, 0, -1)
    assert (p.env_seed, p.camera_resolution, p.image_size, p.jpeg_quality) == (0, 256, 224, 95)
    assert p.episode_start == "reset"


def test_every_constant_names_its_source():
    for f in dataclasses.fields(Protocol):
        assert f.metadata.get("source"), f"{f.name} has no source"


def test_protocol_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPENVLA_PROTOCOL.num_wait_steps = 0


@pytest.mark.parametrize("alias,name", [("spatial", "libero_spatial"), ("object", "libero_object"),
                                        ("goal", "libero_goal"), ("long", "libero_10"), ("LIBERO_10", "libero_10")])
def test_suite_aliases(alias, name):
    assert resolve_suite(alias) == name


def test_unknown_suite_names_the_choices():
    with pytest.raises(ValueError, match="libero_spatial.*long"):
        resolve_suite("libero_90")


def test_task_and_episode_ranges():
    assert check_task_ids([0, 9]) == [0, 9]
    assert check_episode_ids([0, 49]) == [0, 49]
    with pytest.raises(ValueError, match="0..9"):
        check_task_ids([10])
    with pytest.raises(ValueError, match="0..49"):
        check_episode_ids([50])


def test_bad_episode_start_rejected():
    with pytest.raises(ValueError, match="episode_start"):
        Protocol(episode_start="warm")
