#!/usr/bin/env bash
# The small-profile science of issue 23 and the issue-22 table, in the order it is run. Every line is a cached,
# resumable `make reproduce`: rerun this script after any interruption and it continues where it stopped (stages
# keyed by config and code: a code change under an RL stage's sources reruns that stage). Reports land in
# $STORE/<suite>-small[-<swept keys>]/; when a part finishes, publish it with its rows and commit
# (`python -m bench.reproduce.publish --store $STORE --report <dir> --to docs/results/small/<name> --command "<line>"
# [--ours expected_results/ours/<name>.json]`; docs/results/small/README.md lists what is published).
# Estimated cost on the 2-core CPU: about 30 hours in all (issue 23 about 20, issue 22 about 9.5); `DRY_RUN=1 bash
# docs/results/small_profile.sh` prints every plan (RL stages behind a task rule once their SFT evaluations finished).
# The body is one function, read whole before it starts, so editing this file while it runs cannot derail it.
set -euo pipefail
cd "$(dirname "$0")/../.."
STORE=${STORE:-results/reproduce}
run() { make reproduce PROFILE=small "$@" STORE="$STORE" ${DRY_RUN:+DRY_RUN=1} ${JOBS:+JOBS=$JOBS}; }

main() {
    # 0. Object: SFT on all 10 tasks, evaluated on 50 official states each (~2 h); then TGRPO and GRPO on the tasks of
    #    the landed tables (1, 6, 8), seeds 0 and 1 (~6 h): the regenerated RL table, with rows and provenance.
    run SUITE=object METHODS=sft
    run SUITE=object METHODS=tgrpo,grpo TASKS=1,6,8 SEEDS=0,1
    # 0b. More than one update per rollout, so the clip can act (clip fraction in the metrics), seed 0 (~1.5 h).
    run SUITE=object METHODS=tgrpo TASKS=1,6,8 SETTINGS="epochs=2"
    # 3. The task-8 reading (docs/training.md: under the group stop rule the trajectory advantage rewards the fastest
    #    success, an earlier and higher grasp, while the step advantage pulls the grasp down to the object). Two
    #    variants it predicts will not collapse, seeds 0 and 1 (~2 h): the independent stop rule (no reward for being
    #    first), and the step advantage weighted 0.9 (a1=0.9, a2=0.1).
    run SUITE=object METHODS=tgrpo TASKS=8 SEEDS=0,1 SETTINGS="stop_rule=independent;a1=0.9,a2=0.1"
    # Issue 22: DPO, GRAPE and PPO beside SFT, TGRPO and GRPO on the same tasks and seeds (~9.5 h; the first two methods'
    # stages are cached from part 0, and the report of this line replaces part 0's with all five methods in one table).
    run SUITE=object METHODS=tgrpo,grpo,dpo,grape,ppo TASKS=1,6,8 SEEDS=0,1
    # 2. The paper's sweeps, seed 0 (~4 h), on the Object task whose SFT success is nearest 50 % (room to move either
    #    way; TASKS=auto:1, the rule of bench/reproduce/pick_tasks.py, fixed before any RL run).
    run SUITE=object METHODS=tgrpo TASKS=auto:1 \
        SETTINGS="a1=0.1,a2=0.9;a1=0.3,a2=0.7;a1=0.5,a2=0.5;a1=0.7,a2=0.3;a1=0.9,a2=0.1"
    run SUITE=object METHODS=tgrpo TASKS=auto:1 SETTINGS="group_size=2;group_size=4;group_size=6;group_size=8"
    # 1. LIBERO-10, the small profile's defaults: demonstrations and SFT on all 10 tasks, evaluated on all 10 (~3 h);
    #    then TGRPO and GRPO, seeds 0 and 1, on the three tasks whose SFT success is nearest 50 % (TASKS=auto, ties to
    #    the lower id: a rule fixed before any RL run), about 12 h.
    run SUITE=long
}

main
