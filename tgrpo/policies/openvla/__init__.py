"""OpenVLA-7B written in this project (no remote code): config and layout (`config`), the timm-named vision
featurizers (`vit`), the composition (`model`), checkpoints in the released layout (`checkpoint`, `synthetic`),
inputs (`processor`), cached action decoding (`decoding`) and the trainable policy (`policy`). docs/openvla.md.
"""
