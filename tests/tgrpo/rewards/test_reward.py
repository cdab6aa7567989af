"""Dense stage reward on hand-built privileged vectors: every expected number below is worked out by hand."""

import json
import math

import numpy as np
import pytest

from tgrpo.envs.privileged import PrivilegedLayout
from tgrpo.rewards.facts import TaskFacts
from tgrpo.rewards.predicates import CompileError, Geometry, compile_key_pose, compile_predicate
from tgrpo.rewards.reward import RewardConfig, StageReward, sparse_rewards
from tgrpo.rewards.schema import check_spec

NAN = float("nan")


def make_layout(extra: list[tuple[str, int]] = (), goals=(("in", "can_1", "bin_region"),)) -> PrivilegedLayout:
    names = [("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2), ("gripper_opening", 1),
             ("pose/can_1", 7), ("pose/bin_region", 7), ("aabb/can_1", 6), ("size/bin_region", 3), *extra]
    names += [(f"goal/{i}", 1) for i in range(len(goals))]
    slices, cursor = {}, 0
    for name, width in names:
        slices[name] = (cursor, cursor + width)
        cursor += width
    return PrivilegedLayout(slices, tuple(goals), ("can_1", "bin_region"), ("can_1",))


def make_state(layout, eef, opening, can_origin, goal=0.0, can_half=(0.03, 0.03, 0.04), can_center_dz=0.02,
               **named):
    v = np.zeros(layout.size)

    def put(name, value):
        a, b = layout.slices[name]
        v[a:b] = value
    put("eef_pos", eef)
    put("eef_quat", (0, 0, 0, 1))
    put("gripper_opening", opening)
    put("pose/can_1", (*can_origin, 0, 0, 0, 1))
    put("pose/bin_region", (0.0, 0.5, 0.8, 0, 0, 0, 1))
    center = np.array(can_origin) + np.array([0, 0, can_center_dz])
    put("aabb/can_1", np.concatenate([center - can_half, center + can_half]))
    put("size/bin_region", (0.05, 0.05, 0.05))
    if "goal/0" in layout.slices:
        put("goal/0", goal)
    for name, value in named.items():
        put(name.replace("__", "/"), value)
    return v


FACTS = TaskFacts("libero_object", 0, "toy", "put the can in the bin", objects=("can_1",), fixtures=(),
                  regions=("bin_region",), goal_literals=(("in", "can_1", "bin_region"),))

PICK_PLACE = {
    "schema_version": 1,
    "subplans": [{"name": "can in bin", "goal_literal": 0, "stages": [
        {"name": "reach", "reward": 0.25, "predicate": {"type": "near", "entity": "can_1", "dist": 0.03},
         "key_pose": {"entity": "can_1"}},
        {"name": "grasp", "reward": 0.5, "predicate": {"type": "grasped", "entity": "can_1"},
         "key_pose": {"entity": "can_1"}},
        {"name": "lift", "reward": 0.75, "predicate": {"type": "lifted", "entity": "can_1", "height": 0.05},
         "also": [{"type": "grasped", "entity": "can_1"}],
         "key_pose": {"entity": "can_1", "at": "start", "offset": [0, 0, 0.15]}},
        {"name": "place", "reward": 1.0, "predicate": {"type": "in", "entity": "can_1", "target": "bin_region"},
         "key_pose": {"entity": "bin_region", "part": "origin", "offset": [0, 0, 0.1]}},
    ]}],
}


@pytest.fixture
def toy():
    layout = make_layout()
    spec = check_spec(PICK_PLACE, FACTS)
    states = np.stack([
        # 0: far away, open. can origin (0.5, 0, 0.8), box center (0.5, 0, 0.82), box z 0.78..0.86
        make_state(layout, (0, 0, 1), 0.078, (0.5, 0, 0.8)),
        # 1: 1 cm above the can's box: near; wide open: not grasped
        make_state(layout, (0.5, 0, 0.87), 0.078, (0.5, 0, 0.8)),
        # 2: inside the box, fingers at 0.05: grasped, not lifted
        make_state(layout, (0.5, 0, 0.84), 0.05, (0.5, 0, 0.8)),
        # 3: can lifted 0.1 m, still grasped
        make_state(layout, (0.5, 0, 0.94), 0.05, (0.5, 0, 0.9)),
        # 4: LIBERO says the can is in the bin
        make_state(layout, (0, 0.5, 0.95), 0.078, (0, 0.5, 0.82), goal=1.0),
    ])
    return StageReward(spec, layout), states


def test_stage_index_follows_the_stages_in_order(toy):
    reward, states = toy
    assert reward.stage_index(states).tolist() == [0, 1, 2, 3, 4]


def test_negative_distance_reward_by_hand(toy):
    reward, states = toy
    done = np.array([[False, False, False, True]])
    terms = reward.terms(states[None], done)
    # next-stage key poses: reach/grasp -> can box center (0.5, 0, 0.82); lift -> start center + 0.15 z
    # = (0.5, 0, 0.97); place -> bin origin + 0.1 z = (0, 0.5, 0.9)
    d = [math.sqrt(0.5**2 + 0.18**2), 0.05, 0.13, math.sqrt(0.5**2 + 0.5**2 + 0.04**2), 0.05]
    np.testing.assert_allclose(terms.distance[0], d, atol=1e-12)
    np.testing.assert_allclose(terms.f1[0], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(terms.f2[0], [-0.05, -0.13, -d[3], -0.05], atol=1e-12)
    np.testing.assert_allclose(terms.bonus[0], [0, 0, 0, 1])
    np.testing.assert_allclose(terms.rewards[0], [0.2, 0.37, 0.75 - d[3], 1.95], atol=1e-12)
    assert terms.returns[0] == pytest.approx(0.2 + 0.37 + 0.75 - d[3] + 1.95)


def test_potential_based_shaping_by_hand(toy):
    reward, states = toy
    cfg = RewardConfig(shaping="potential", gamma=1.0, shaping_weight=2.0, stage_weight=0.5, success_bonus=3.0)
    done = np.array([[False, False, False, True]])
    terms = reward.terms(states[None], done, config=cfg)
    d = [math.sqrt(0.5**2 + 0.18**2), 0.05, 0.13, math.sqrt(0.5**2 + 0.5**2 + 0.04**2), 0.05]
    # F_t = 2 * (phi_{t+1} - phi_t) = 2 * (d_t - d_{t+1})
    np.testing.assert_allclose(terms.f2[0], [2 * (d[i] - d[i + 1]) for i in range(4)], atol=1e-12)
    np.testing.assert_allclose(terms.f1[0], [0.125, 0.25, 0.375, 0.5])
    np.testing.assert_allclose(terms.bonus[0], [0, 0, 0, 3])


def test_distance_clip_and_gamma():
    layout = make_layout()
    reward = StageReward(check_spec(PICK_PLACE, FACTS), layout)
    s0 = make_state(layout, (0, 0, 3.0), 0.078, (0.5, 0, 0.8))  # 2.2+ m from the can
    s1 = make_state(layout, (0.5, 0, 0.92), 0.078, (0.5, 0, 0.8))  # 0.1 from the box center, 6 cm above box
    terms = reward.terms(np.stack([s0, s1])[None], config=RewardConfig(shaping="potential", gamma=0.5,
                                                                       distance_clip=1.0))
    # phi0 = -1 (clipped), phi1 = -0.1: F = 0.5 * -0.1 - (-1) = 0.95
    assert terms.f2[0, 0] == pytest.approx(0.95)


def test_stages_cannot_be_skipped(toy):
    reward, states = toy
    # LIBERO's goal is true at the first step but nothing before it was reached: stage 0
    jump = states.copy()
    jump[1] = make_state(reward.layout, (0, 0, 1), 0.078, (0, 0.5, 0.82), goal=1.0)
    assert reward.stage_index(jump[:2]).tolist() == [0, 0]
    # near and the goal at once: only stage 1 (grasp and lift never happened)
    both = make_state(reward.layout, (0.5, 0, 0.87), 0.078, (0.5, 0, 0.8), goal=1.0)
    assert reward.stage_index(np.stack([states[0], both])).tolist() == [0, 1]


def test_dropping_the_object_lowers_the_stage(toy):
    reward, states = toy
    dropped = make_state(reward.layout, (0.5, 0, 0.94), 0.078, (0.5, 0, 0.8))  # fingers open, can back down
    seq = np.stack([*states[:4], dropped])
    assert reward.stage_index(seq).tolist() == [0, 1, 2, 3, 0]  # eef 8 cm above the box: not even near


def test_latched_stage_holds_while_its_also_holds(toy):
    reward, states = toy
    spec = json.loads(json.dumps(reward.spec))
    spec["subplans"][0]["stages"][2]["latch"] = True  # lift: lifted (predicate), grasped (also)
    latched = StageReward(spec, reward.layout)
    lowered = make_state(reward.layout, (0.5, 0, 0.86), 0.05, (0.5, 0, 0.82))  # held, only 2 cm up now
    released = make_state(reward.layout, (0.5, 0, 0.86), 0.078, (0.5, 0, 0.82))  # fingers open
    seq = np.stack([*states[:4], lowered, lowered, released, lowered])
    assert reward.stage_index(seq).tolist() == [0, 1, 2, 3, 2, 2, 1, 2]
    # latched: stays at lift while grasped; after the release it must be lifted again
    assert latched.stage_index(seq).tolist() == [0, 1, 2, 3, 3, 3, 1, 2]
    # batched, and a latch that starts on the first step
    both = latched.stage_index(np.stack([seq, seq[[0, 1, 2, 3, 3, 4, 4, 4]]]))
    assert both[1].tolist() == [0, 1, 2, 3, 3, 3, 3, 3]


def test_mask_zeroes_finished_steps_and_batches(toy):
    reward, states = toy
    batch = np.stack([states, states])
    mask = np.array([[True, True, True, True], [True, True, False, False]])
    done = np.array([[False, False, False, True], [False, False, False, False]])
    terms = reward.terms(batch, done, mask)
    np.testing.assert_allclose(terms.rewards[1, 2:], 0.0)
    np.testing.assert_allclose(terms.rewards[1, :2], terms.rewards[0, :2])


def test_bad_shapes_and_config_are_refused(toy):
    reward, states = toy
    with pytest.raises(ValueError, match="privileged must be"):
        reward.terms(states[None, :, :5])
    with pytest.raises(ValueError, match="done and mask"):
        reward.terms(states[None], np.zeros((1, 3), dtype=bool))
    with pytest.raises(ValueError, match="unknown shaping"):
        RewardConfig(shaping="exp")


def test_sparse_reward_is_one_on_the_success_step():
    done = np.array([[False, False, True], [False, False, False], [False, True, True]])
    mask = np.array([[True, True, True], [True, True, True], [True, True, False]])
    np.testing.assert_array_equal(sparse_rewards(done, mask), [[0, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert sparse_rewards(done).sum(axis=1).tolist() == [1, 0, 1]


def test_key_pose_overrides_from_demonstrations(toy):
    reward, states = toy
    override = {"reach": {"entity": "can_1", "part": "center", "at": "current", "offset": [0, 0, 0.1],
                          "joint_target": None}}
    r2 = StageReward(reward.spec, reward.layout, override)
    # state 0: next stage is reach: key = (0.5, 0, 0.92)
    assert r2.terms(states[None]).distance[0, 0] == pytest.approx(math.sqrt(0.25 + 0.08**2))
    with pytest.raises(ValueError, match="stages the spec does not have"):
        StageReward(reward.spec, reward.layout, {"nope": override["reach"]})


# -- geometric predicates ---------------------------------------------------------------------------------------

def _pred(layout, **pred):
    from tgrpo.rewards.schema import PREDICATE_DEFAULTS

    full = {**PREDICATE_DEFAULTS[pred["type"]], **pred}
    return compile_predicate(Geometry(layout), full)


def test_above_and_geometric_in_and_on():
    layout = make_layout(goals=())
    above = _pred(layout, type="above", entity="can_1", target="bin_region", xy_tol=0.05, min_dz=0.0)
    # bin top = 0.8 + 0.05 = 0.85; can bottom = origin z + 0.02 - 0.04
    high = make_state(layout, (0, 0, 1), 0.05, (0.03, 0.5, 0.9))  # xy 3 cm off, bottom 0.88
    low = make_state(layout, (0, 0, 1), 0.05, (0.03, 0.5, 0.85))  # bottom 0.83 < 0.85
    wide = make_state(layout, (0, 0, 1), 0.05, (0.06, 0.5, 0.9))  # 6 cm off
    assert above(np.stack([high, low, wide])).tolist() == [True, False, False]
    inside = _pred(layout, type="in", entity="can_1", target="bin_region")
    # LIBERO in_box on the object's origin: x, y within +-0.05, z within (0.8 - 0.05 - 0.01, 0.85)
    a = make_state(layout, (0, 0, 1), 0.05, (0.04, 0.5, 0.745))
    b = make_state(layout, (0, 0, 1), 0.05, (0.04, 0.5, 0.735))
    c = make_state(layout, (0, 0, 1), 0.05, (0.06, 0.5, 0.8))
    assert inside(np.stack([a, b, c])).tolist() == [True, False, False]
    on = _pred(layout, type="on", entity="can_1", target="bin_region")
    # LIBERO under(): size_z - 0.005 < dz < size_z + 0.1 and |dxy| < size_xy (dz from the site's origin)
    on_a = make_state(layout, (0, 0, 1), 0.05, (0.0, 0.5, 0.85))
    on_b = make_state(layout, (0, 0, 1), 0.05, (0.0, 0.5, 0.96))
    assert on(np.stack([on_a, on_b])).tolist() == [True, False]


def test_near_a_point_with_offset_and_lifted_from_start():
    layout = make_layout(goals=())
    near = _pred(layout, type="near", entity="can_1", part="origin", offset=[0, 0, 0.1], dist=0.02)
    s = [make_state(layout, (0.5, 0.01, 0.91), 0.078, (0.5, 0, 0.8)),
         make_state(layout, (0.5, 0.03, 0.91), 0.078, (0.5, 0, 0.8))]
    assert near(np.stack(s)).tolist() == [True, False]
    lifted = _pred(layout, type="lifted", entity="can_1", height=0.05)
    seq = np.stack([make_state(layout, (0, 0, 1), 0.05, (0.5, 0, z)) for z in (0.8, 0.84, 0.86)])
    assert lifted(seq).tolist() == [False, False, True]


def test_grasped_needs_fingers_between_wide_open_and_shut():
    layout = make_layout(goals=())
    grasped = _pred(layout, type="grasped", entity="can_1")
    at = (0.5, 0, 0.82)
    s = [make_state(layout, at, g, (0.5, 0, 0.8)) for g in (0.078, 0.05, 0.001)]
    s.append(make_state(layout, (0.5, 0, 0.89), 0.05, (0.5, 0, 0.8)))  # 3 cm above the box
    assert grasped(np.stack(s)).tolist() == [False, True, False, False]


# -- articulation -----------------------------------------------------------------------------------------------

_J = "wooden_cabinet_1/wooden_cabinet_1_top_level"
DRAWER = [("pose/wooden_cabinet_1_top_region", 7), (f"joint/{_J}", 1), (f"ranges/{_J}", 8), (f"handle/{_J}", 3),
          (f"axis/{_J}", 3), (f"anchor/{_J}", 3)]
DOOR = [("pose/mw_1", 7), ("joint/mw_1/mw_1_joint", 1), ("ranges/mw_1/mw_1_joint", 8),
        ("handle/mw_1/mw_1_joint", 3), ("axis/mw_1/mw_1_joint", 3), ("anchor/mw_1/mw_1_joint", 3)]


def _drawer_state(layout, q):
    k = _J.replace("/", "__")
    named = {f"joint__{k}": q, f"handle__{k}": (0.1, -0.2, 1.0), f"axis__{k}": (0, -1, 0),
             f"anchor__{k}": (0, 0, 0.9), f"ranges__{k}": (-0.16, -0.14, 0.0, 0.005, NAN, NAN, NAN, NAN)}
    return make_state(layout, (0, 0, 1), 0.078, (0.5, 0, 0.8), **named)


@pytest.mark.parametrize("fixture,with_ranges", [("cab_1", True), ("wooden_cabinet_1", False)])
def test_drawer_open_close_and_progress(fixture, with_ranges):
    """With the layout's ranges slice, and without it (LIBERO's numbers for a wooden cabinet by category)."""
    extra = [(f"pose/{fixture}_top_region", 7), (f"joint/{fixture}/{fixture}_top_level", 1)]
    if with_ranges:
        extra.append((f"ranges/{fixture}/{fixture}_top_level", 8))
    layout = make_layout(extra, goals=())

    def states(qs):
        out = []
        for q in qs:
            named = {f"joint__{fixture}__{fixture}_top_level": q}
            if with_ranges:
                named[f"ranges__{fixture}__{fixture}_top_level"] = (-0.16, -0.14, 0.0, 0.005, NAN, NAN, NAN, NAN)
            out.append(make_state(layout, (0, 0, 1), 0.078, (0.5, 0, 0.8), **named))
        return np.stack(out)

    geo = Geometry(layout)
    region = f"{fixture}_top_region"
    full = compile_predicate(geo, {"type": "open", "entity": region})
    half = compile_predicate(geo, {"type": "open", "entity": region, "progress": 0.5})
    close = compile_predicate(geo, {"type": "close", "entity": region})
    seq = states([0.0, -0.06, -0.08, -0.13, -0.15])
    # LIBERO (cabinets): open iff q < -0.14, closed iff q > 0.0; from q0 = 0, half way to -0.14 is q <= -0.07
    assert full(seq).tolist() == [False, False, False, False, True]
    assert half(seq).tolist() == [False, False, True, True, True]
    assert close(states([0.001, 0.0, -0.01])).tolist() == [True, False, False]


def test_progress_counts_from_the_episode_start_value():
    layout = make_layout(DRAWER, goals=())
    half = compile_predicate(Geometry(layout), {"type": "close", "entity": "wooden_cabinet_1_top_region",
                                                "progress": 0.5})
    # starting open at -0.15: half way to the close threshold 0.0 is q >= -0.075
    seq = np.stack([_drawer_state(layout, q) for q in (-0.15, -0.08, -0.07)])
    assert half(seq).tolist() == [False, False, True]


def test_slide_and_hinge_key_poses_move_the_handle_to_the_target():
    layout = make_layout(DRAWER, goals=())
    key = compile_key_pose(Geometry(layout), {"entity": "wooden_cabinet_1_top_region", "part": "handle",
                                               "at": "current", "offset": [0, 0, 0], "joint_target": "open"})
    # slide: handle + axis * (target - q), target = middle of (-0.16, -0.14) = -0.15; q = 0, axis (0, -1, 0)
    np.testing.assert_allclose(key(_drawer_state(layout, 0.0)[None])[0], (0.1, -0.05, 1.0), atol=1e-12)
    np.testing.assert_allclose(key(_drawer_state(layout, -0.1)[None])[0], (0.1, -0.15, 1.0), atol=1e-12)

    door = make_layout(DOOR, goals=())
    s = make_state(door, (0, 0, 1), 0.078, (0.5, 0, 0.8), joint__mw_1__mw_1_joint=-math.pi / 2,
                   ranges__mw_1__mw_1_joint=(-2.094, -1.3, -0.005, 0.0, NAN, NAN, NAN, NAN),
                   handle__mw_1__mw_1_joint=(0.2, 0.0, 1.0), axis__mw_1__mw_1_joint=(0, 0, 1),
                   anchor__mw_1__mw_1_joint=(0.0, 0.0, 1.0))
    key = compile_key_pose(Geometry(door), {"entity": "mw_1", "part": "handle", "at": "current",
                                            "offset": [0, 0, 0.01], "joint_target": "close"})
    angle = -0.0025 + math.pi / 2  # to the middle of the close range (-0.005, 0) from -pi/2
    np.testing.assert_allclose(key(s[None])[0], (0.2 * math.cos(angle), 0.2 * math.sin(angle), 1.01), atol=1e-12)
    close = compile_predicate(Geometry(door), {"type": "close", "entity": "mw_1"})
    assert close(s[None]).tolist() == [False]


def test_unknown_names_fail_at_compile_time():
    layout = make_layout(goals=())
    with pytest.raises(CompileError, match="unknown entity 'ghost'"):
        _pred(layout, type="near", entity="ghost")
    with pytest.raises(CompileError, match="no single articulated joint"):
        compile_predicate(Geometry(layout), {"type": "open", "entity": "bin_region"})
