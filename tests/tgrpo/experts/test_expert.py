"""Scripted expert: geometry helpers, the planner on hand-built layouts, and real LIBERO episodes."""

import numpy as np
import pytest

from tgrpo.envs.privileged import PrivilegedLayout
from tgrpo.experts.geometry import yaw_for_finger_axis
from tgrpo.experts.planner import plan_task
from tgrpo.experts.scene import Scene, down_orientation, quat_to_mat, rotvec_of, wrap_half_turn


def _rot(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k  # Rodrigues


@pytest.mark.parametrize("axis,angle", [((0, 0, 1), 0.3), ((1, 2, 3), 1.1), ((1, 0, 0), np.pi - 1e-6),
                                        ((0, 1, 1), 3.0)])
def test_rotvec_inverts_rodrigues(axis, angle):
    r = rotvec_of(_rot(axis, angle))
    np.testing.assert_allclose(_rot(r, np.linalg.norm(r)), _rot(axis, angle), atol=1e-5)


def test_quat_xyzw():
    s = np.sin(0.25)
    np.testing.assert_allclose(quat_to_mat(np.array([0, 0, s, np.cos(0.25)])), _rot((0, 0, 1), 0.5), atol=1e-12)


def test_down_orientation_points_down_and_fingers_follow_yaw():
    for yaw in (0.0, 0.7, -1.2):
        m = down_orientation(yaw)
        np.testing.assert_allclose(m[:, 2], [0, 0, -1], atol=1e-12)  # approach axis straight down
        np.testing.assert_allclose(m[:, 1], [np.sin(yaw), -np.cos(yaw), 0], atol=1e-12)  # finger axis
        assert abs(wrap_half_turn(yaw_for_finger_axis(m[:2, 1])) - wrap_half_turn(yaw)) < 1e-9


def test_wrap_half_turn():
    assert wrap_half_turn(np.pi) == pytest.approx(0.0)
    assert wrap_half_turn(0.75 * np.pi) == pytest.approx(-0.25 * np.pi)
    assert wrap_half_turn(np.pi / 2) == pytest.approx(np.pi / 2)


def _layout(goals, entities, movable, joints=(), sites=()):
    """A privileged layout with the slices the planner reads; values filled by the caller."""
    slices, cursor = {}, 0

    def add(name, width):
        nonlocal cursor
        slices[name] = (cursor, cursor + width)
        cursor += width

    for name, width in (("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2), ("gripper_opening", 1)):
        add(name, width)
    for e in entities:
        add(f"pose/{e}", 7)
    for e, j in joints:
        add(f"joint/{e}/{j}", 1)
    for i in range(len(goals)):
        add(f"goal/{i}", 1)
    for e in entities:
        if e not in sites:
            add(f"aabb/{e}", 6)
            add(f"box/{e}", 6)
    for s in sites:
        add(f"size/{s}", 3)
    for e, j in joints:
        for kind, width in (("part", 6), ("handle", 3), ("axis", 3), ("anchor", 3), ("ranges", 8)):
            add(f"{kind}/{e}/{j}", width)
    return PrivilegedLayout(slices, tuple(tuple(g) for g in goals), tuple(entities), tuple(movable))


def _set(layout, v, name, value):
    a, b = layout.slices[name]
    v[a:b] = value


def test_planner_drawer_then_place_then_close():
    goals = [("close", "cab_1_bottom_region"), ("in", "bowl_1", "cab_1_bottom_region")]
    layout = _layout(goals, ["bowl_1", "cab_1", "cab_1_bottom_region"], ["bowl_1"],
                     joints=[("cab_1", "cab_1_bottom_level")], sites=["cab_1_bottom_region"])
    v = np.zeros(layout.size)
    _set(layout, v, "ranges/cab_1/cab_1_bottom_level", [-0.16, -0.14, 0.0, 0.005] + [np.nan] * 4)
    _set(layout, v, "aabb/bowl_1", [0, 0, 0, 0.1, 0.1, 0.05])
    skills = plan_task(Scene(layout, v))
    assert [s.name for s in skills] == ["open_drawer", "pick_place", "close_drawer"]
    assert skills[0].literal_index is None and skills[1].literal_index == 1 and skills[2].literal_index == 0


def _two_level_cabinet(bowl_width_y=0.107):
    """LIBERO-10 task 3's shape, numbers measured there (the bottom drawer pulled to its -0.16 limit): the bottom
    drawer's region centre y 0.158, half depth 0.076 (so its front edge at y 0.082); the middle level above it, its
    handle reaching out to y 0.197; drawers open towards -y (axis +y, open range negative)."""
    region = "cab_1_bottom_region"
    goals = [("close", region), ("in", "bowl_1", region)]
    joints = [("cab_1", "cab_1_bottom_level"), ("cab_1", "cab_1_middle_level")]
    layout = _layout(goals, ["bowl_1", "cab_1", region], ["bowl_1"], joints=joints, sites=[region])
    v = np.zeros(layout.size)
    for _e, j in joints:
        _set(layout, v, f"ranges/cab_1/{j}", [-0.16, -0.14, 0.0, 0.005] + [np.nan] * 4)
        _set(layout, v, f"axis/cab_1/{j}", [0.0, 1.0, 0.0])
    _set(layout, v, "part/cab_1/cab_1_bottom_level", [-0.116, 0.037, 0.915, 0.103, 0.241, 0.984])
    _set(layout, v, "part/cab_1/cab_1_middle_level", [-0.116, 0.197, 0.984, 0.103, 0.401, 1.053])
    _set(layout, v, f"pose/{region}", [-0.006, 0.158, 0.952, 0, 0, 0, 1])
    _set(layout, v, f"size/{region}", [0.102, 0.076, 0.03])
    _set(layout, v, "aabb/bowl_1", [0.0, -0.1, 0.9, 0.107, -0.1 + bowl_width_y, 0.951])
    _set(layout, v, "aabb/cab_1", [-0.133, 0.051, 0.91, 0.122, 0.418, 1.128])
    return Scene(layout, v)


def test_a_drawer_under_another_level_is_pulled_fully_open_and_the_bowl_kept_out_from_under_it():
    """Hand-computed along o = -y: the overhang reaches s = -0.197, the region's front edge s = -0.158 + 0.076 =
    -0.082, the bowl's half depth 0.0535; its centre goes midway, s = ((-0.197 + 0.0535) + (-0.082 - 0.0535)) / 2
    = -0.1395, i.e. y 0.1395: far rim at 0.193 (4 mm before the handle), near rim at 0.086 (4 mm inside the
    front edge). Across, the region's centre x -0.006."""
    scene = _two_level_cabinet()
    skills = plan_task(scene)
    assert [s.name for s in skills] == ["open_drawer", "pull_drawer", "pick_place", "close_drawer"]
    np.testing.assert_allclose(skills[2].place_fn(scene)["xy"], [-0.006, 0.1395], atol=1e-9)


def test_a_drawer_with_nothing_above_is_not_pulled_further_and_the_object_goes_to_its_centre():
    scene = _two_level_cabinet()
    a, b = scene.layout.slices["part/cab_1/cab_1_middle_level"]
    scene.v[a:b] = [-0.116, 0.197, 0.70, 0.103, 0.401, 0.80]  # the other level now below the drawer
    skills = plan_task(scene)
    assert [s.name for s in skills] == ["open_drawer", "pick_place", "close_drawer"]
    np.testing.assert_allclose(skills[1].place_fn(scene)["xy"], [-0.006, 0.158], atol=1e-9)


def test_close_drawer_pitches_the_hand_towards_the_push_with_the_fingers_along_the_handle():
    from tgrpo.experts.articulated import CloseDrawer

    scene = _two_level_cabinet()
    a, b = scene.layout.slices["eef_quat"]
    scene.v[a:b] = [1.0, 0.0, 0.0, 0.0]  # pointing down (a half turn about x)
    skill = CloseDrawer("cab_1", "cab_1_bottom_level")
    _h, o, rot = skill._setup(scene)
    np.testing.assert_allclose(o, [0, -1, 0], atol=1e-12)
    p = skill.pitch
    np.testing.assert_allclose(rot[:, 2], [0, np.sin(p), -np.cos(p)], atol=1e-12)  # down, tipped towards +y
    np.testing.assert_allclose(np.abs(rot[:, 1]), [1, 0, 0], atol=1e-12)  # fingers close along the handle (x)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_planner_push_flat_plate_and_knob_first():
    goals = [("on", "plate_1", "table_front_region"), ("turnon", "stove_1")]
    layout = _layout(goals, ["plate_1", "stove_1", "table_front_region"], ["plate_1"],
                     joints=[("stove_1", "stove_1_button")], sites=["table_front_region"])
    v = np.zeros(layout.size)
    _set(layout, v, "aabb/plate_1", [0, 0, 0.90, 0.14, 0.14, 0.918])  # wide and 1.8 cm high
    _set(layout, v, "ranges/stove_1/stove_1_button", [np.nan] * 4 + [0.5, 2.1, -0.005, 0.0])
    skills = plan_task(Scene(layout, v))
    assert [s.name for s in skills] == ["turn_knob", "push"]
    assert skills[0].goal == "turnon"


def test_two_objects_on_one_region_get_separate_spots_inside_it():
    """LIBERO-10 task 8 shape: two 8 x 14.7 cm moka pots on one 15 x 15 cm cook region (half 0.075).

    Hand-computed: a row along y is impossible (14.7 cm each); along x the spacing is
    min(2 (0.075 - 0.02), 0.081 + 0.02) = 0.101, so the origins sit at x = -/+ 0.0505 and the pots' footprints
    leave a 2 cm gap, both origins inside the region as LIBERO's check needs.
    """
    region = "stove_1_cook_region"
    goals = [("on", "pot_1", region), ("on", "pot_2", region)]
    layout = _layout(goals, ["pot_1", "pot_2", "stove_1", region], ["pot_1", "pot_2"], sites=[region])
    v = np.zeros(layout.size)
    _set(layout, v, f"pose/{region}", [0, 0, 0.905, 0, 0, 0, 1])
    _set(layout, v, f"size/{region}", [0.075, 0.075, 0.002])
    _set(layout, v, "aabb/pot_1", [0.30, 0.20, 0.90, 0.381, 0.347, 1.05])
    _set(layout, v, "aabb/pot_2", [0.40, -0.20, 0.90, 0.481, -0.053, 1.05])
    _set(layout, v, "aabb/stove_1", [-0.1, -0.1, 0.88, 0.1, 0.1, 0.905])
    scene = Scene(layout, v)
    spots = [skill.place_fn(scene)["xy"] for skill in plan_task(scene)]
    assert np.allclose(spots, [[-0.0505, 0.0], [0.0505, 0.0]])
    lone = plan_task(Scene(_layout(goals[:1], ["pot_1", "stove_1", region], ["pot_1"], sites=[region]), v))
    assert np.allclose(lone[0].place_fn(scene)["xy"], [0.0, 0.0])  # a single object still goes to the centre


def test_planner_rejects_unknown_predicate():
    layout = _layout([("stack", "a_1", "b_1")], ["a_1", "b_1"], ["a_1", "b_1"])
    with pytest.raises(NotImplementedError, match="stack"):
        plan_task(Scene(layout, np.zeros(layout.size)))


def _expert_episode(env, expert, start, key) -> bool:
    """One episode of the expert in slot 0 from `start`, stopped at LIBERO's success or the step limit."""
    obs = env.start_episode(start)
    expert.begin_episode(0, env.info.instruction, key, env.layout)
    for _ in range(env.max_steps):
        obs, success = env.step(expert.act({n: a[None] for n, a in obs.items()}, [""], [0]).actions[0])
        if success:
            return True
    return False


@pytest.mark.libero
def test_expert_solves_libero_object_task_episodes():
    """Two official episodes of libero_object task 0, judged by LIBERO's own success check."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.policies import make_policy

    env = LiberoEnv("libero_object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    expert = make_policy("expert")
    try:
        for k in (0, 1):
            assert _expert_episode(env, expert, official_start("libero_object", 0, k), (0, k))
            assert env.sim_env._check_success()
            log = expert.stage_log(0)
            assert len(log) == env.steps and np.all(np.diff(log) >= 0)  # no retry needed on these two
            stages = [t["stage"] for t in expert.transitions(0)]
            assert stages[:5] == ["approach", "descend", "grasp", "lift", "transport"]
            grasp = next(t for t in expert.transitions(0) if t["stage"] == "lift")
            # the end effector was at the soup can when the grasp closed
            assert np.linalg.norm(np.subtract(grasp["eef_pos"], grasp["object_pos"])[:2]) < 0.03
    finally:
        env.close()


def _escape_scene(bowl_lo_z=0.9, fixture_top=1.128):
    """A bowl [0, 0.1]^2 on the table; a fixture reaching over it from x >= 0.07 (y <= 0.03); a tall bottle
    right of the bowl's -x side."""
    layout = _layout([("in", "bowl_1", "cab_1")], ["bowl_1", "bottle_1", "cab_1"], ["bowl_1", "bottle_1"])
    v = np.zeros(layout.size)
    _set(layout, v, "aabb/bowl_1", [0, 0, bowl_lo_z, 0.1, 0.1, bowl_lo_z + 0.05])
    _set(layout, v, "aabb/bottle_1", [-0.3, -0.3, 0.9, -0.005, 0.3, 1.05])
    _set(layout, v, "aabb/cab_1", [0.07, -1.0, 0.91, 1.0, 0.03, fixture_top])
    return Scene(layout, v)


def test_escape_slides_out_from_under_an_overhang_past_neighbours():
    from tgrpo.experts.pick_place import escape_offset

    # Out from under the fixture needs x_max < 0.07 - 0.012 (dx <= -0.042) or y_min > 0.03 + 0.012 (dy >= 0.042);
    # every move with dx < 0 runs into the bottle (0.5 cm margin), so the shortest on the 1 cm / 22.5 degree
    # grid is 5 cm along +y (at 5 cm, +y is the listed direction closest to -x that clears).
    np.testing.assert_allclose(escape_offset(_escape_scene(), "bowl_1"), [0.0, 0.05], atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"bowl_lo_z": 0.95}, {"fixture_top": 0.97}])
def test_no_escape_off_the_table_or_under_nothing_tall(kwargs):
    from tgrpo.experts.pick_place import escape_offset

    # bowl 5 cm above the table (in a drawer, on a stand): no escape; a fixture top 2 cm over the bowl: not an overhang
    np.testing.assert_array_equal(escape_offset(_escape_scene(**kwargs), "bowl_1"), [0.0, 0.0])


def _microwave_scene(q=-1.579):
    """LIBERO-10 task 9's microwave as measured on official state 0: heating region centre (-0.01, 0.367, 1.016),
    half (0.12, 0.084, 0.08); the door hinged at (-0.182, 0.269) about +z, 0.244 m to its handle, open at q."""
    region, door = "mw_1_heating_region", ("mw_1", "mw_1_microjoint")
    goals = [("in", "white_yellow_mug_1", region), ("close", "mw_1")]
    layout = _layout(goals, ["white_yellow_mug_1", "mw_1", region], ["white_yellow_mug_1"], joints=[door],
                     sites=[region])
    v = np.zeros(layout.size)
    _set(layout, v, f"pose/{region}", [-0.01, 0.367, 1.016, 0, 0, 0, 1])
    _set(layout, v, f"size/{region}", [0.12, 0.084, 0.08])
    _set(layout, v, "aabb/mw_1", [-0.249, 0.009, 0.919, 0.164, 0.469, 1.11])
    _set(layout, v, "ranges/mw_1/mw_1_microjoint", [-2.094, -1.3, -0.005, 0.0] + [np.nan] * 4)
    _set(layout, v, "axis/mw_1/mw_1_microjoint", [0, 0, 1])
    _set(layout, v, "anchor/mw_1/mw_1_microjoint", [-0.182, 0.269, 1.016])
    closed = np.array([0.244, 0.0])  # along +x when shut
    c, s = np.cos(q), np.sin(q)
    _set(layout, v, "handle/mw_1/mw_1_microjoint", [-0.182 + c * closed[0], 0.269 + s * closed[0], 1.016])
    _set(layout, v, "joint/mw_1/mw_1_microjoint", [q])
    # the mug as on official state 0: origin (-0.02, -0.019, 0.9), turned -90 degrees about z (handle towards -y)
    _set(layout, v, "pose/white_yellow_mug_1", [-0.02, -0.019, 0.9, 0, 0, -np.sin(np.pi / 4), np.cos(np.pi / 4)])
    _set(layout, v, "aabb/white_yellow_mug_1", [-0.073, -0.088, 0.9, 0.034, 0.052, 1.003])
    return layout, v


@pytest.mark.parametrize("q", [-1.579, -2.0, -1.3])
def test_enclosure_opening_faces_away_from_the_hinge_whatever_the_door_angle(q):
    from tgrpo.experts.enclosure import InsertThroughDoor, closed_door_direction

    layout, v = _microwave_scene(q)
    scene = Scene(layout, v)
    assert np.allclose(closed_door_direction(scene, "mw_1/mw_1_microjoint"), [1.0, 0.0], atol=1e-9)
    skills = plan_task(scene)
    assert [s.name for s in skills] == ["open_door", "insert", "close_door"]
    insert = skills[1]
    assert isinstance(insert, InsertThroughDoor)
    f = insert.frame(scene)
    # the door is on the -y face: in is +y, the opening face at 0.367 - 0.084
    assert np.allclose(f["n"], [0.0, 1.0]) and f["face"] == pytest.approx(0.283)
    # the handle bar of the asset, turned with the mug: 4.64 cm towards -y from the origin, 7.96 cm up
    h, radial = insert.handle(scene)
    assert np.allclose(h, [-0.02, -0.019 - 0.0464, 0.9796], atol=1e-9) and np.allclose(radial, [0.0, -1.0])
    # the slide stops with the hand (3.5 cm half width + 1.9 cm margin) in front of the opening face
    assert np.allclose(insert.slide_grip(scene), [-0.01, 0.283 - 0.054])


def test_an_object_without_a_known_handle_is_still_placed_from_above():
    layout, v = _microwave_scene()
    layout = layout.__class__(layout.slices, (("in", "bowl_1", "mw_1_heating_region"),), layout.entities,
                              layout.movable)
    assert [s.name for s in plan_task(Scene(layout, v))] == ["pick_place"]


@pytest.mark.libero
def test_expert_puts_the_mug_in_the_microwave_and_closes_it():
    """LIBERO-10 task 9, official state 0, judged by LIBERO's own success check (269 steps when measured)."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.policies import make_policy

    env = LiberoEnv("libero_10", 9, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    expert = make_policy("expert")
    try:
        assert _expert_episode(env, expert, official_start("libero_10", 9, 0), (9, 0))
        assert env.sim_env._check_success()
        assert next(t["skill"] for t in expert.transitions(0)) == "insert"
    finally:
        env.close()


@pytest.mark.libero
def test_expert_puts_the_bowl_in_the_bottom_drawer_and_closes_it():
    """LIBERO-10 task 3, official state 0 (failed before: the bowl came down on the middle drawer's handle, and the
    push pointing down stalled 3 cm short with the forearm on the cabinet's top edge). 213 steps when measured."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.policies import make_policy

    env = LiberoEnv("libero_10", 3, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    expert = make_policy("expert")
    try:
        assert _expert_episode(env, expert, official_start("libero_10", 3, 0), (3, 0))
        assert env.sim_env._check_success()
        skills = [t["skill"] for t in expert.transitions(0)]
        assert skills[0] == "pull_drawer" and skills[-1] == "close_drawer"  # open already: the handle pull skipped
    finally:
        env.close()


def test_box_span_limit_counts_both_sides_of_the_box():
    """A finger axis turned by a from a box's short side spans 2 (s cos a + l sin a); the butter (s 2 cm, l 3.8 cm)
    fits the 7.2 cm span up to about 0.51 rad (hand-computed: 2 (0.02 cos 0.506 + 0.038 sin 0.506) = 0.0718,
    at 0.515 it is 0.0723), not the 0.98 rad that the short side alone allows."""
    from tgrpo.experts.geometry import box_span_limit

    assert box_span_limit(0.02, 0.038) == pytest.approx(0.506, abs=0.01)
    assert box_span_limit(0.01, 0.02) == pytest.approx(np.pi / 2)  # small enough to take any way round
    assert box_span_limit(0.04, 0.05) == 0.0  # wider than the span even square on
    # 4 x 6.8 cm: it fits square on (4 cm) and lengthwise (6.8 cm) but not at 45 degrees (7.6 cm): the limit is
    # where it first stops fitting, 2 (0.02 cos a + 0.034 sin a) = 0.072 at about 0.62 rad
    assert box_span_limit(0.02, 0.034) == pytest.approx(0.62, abs=0.01)


@pytest.mark.libero
def test_expert_pushes_the_plate_on_a_turning_path():
    """LIBERO-Goal task 5, official state 0 (failed at 36f97ef): the push turns between two legs, and the second
    leg starts where the plate stopped, up to 1.5 cm off the planned via point. With the finger axis kept from the
    plan, the hand moved up to 21 degrees off it (and the servo's per-axis clip bent a diagonal step further), the
    finger slipped out of the plate's hollow on every second leg and the episode ran out of its 300 steps."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.policies import make_policy

    env = LiberoEnv("libero_goal", 5, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    expert = make_policy("expert")
    try:
        assert _expert_episode(env, expert, official_start("libero_goal", 5, 0), (5, 0))
        assert env.sim_env._check_success()
        assert "push_on" in [t["stage"] for t in expert.transitions(0)]  # a second leg was pushed
    finally:
        env.close()
