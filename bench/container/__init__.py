"""The tgrpo-bench container: build the image and run tgrpo-bench in it with the docker SDK.

``python -m bench.container build|smoke|run|base|engine|ci`` (``make docker``, ``make docker-smoke``);
see docs/container.md. Importing this package does not import the docker SDK.
"""

from bench.container.spec import (
    BUILD_INFO_PATH,
    DIGEST_ENV,
    IMAGE_ENV,
    BuildSpec,
    parse_gpus,
    run_kwargs,
    volume_binds,
)

__all__ = ["BUILD_INFO_PATH", "DIGEST_ENV", "IMAGE_ENV", "BuildSpec", "parse_gpus", "run_kwargs", "volume_binds"]
